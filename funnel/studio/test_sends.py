"""Test sends from the studio pages: the web request queues one, the worker sends it.

No email leaves inside a web request. ``queue_test_send`` refuses what a coach can
get wrong (the address, an email that does not render, too many tests at once)
and writes one ``test_send`` row; ``drain`` is the worker's piece:

1. a row a worker left in ``sending`` (it stopped mid-send and its lease ran out) is
   marked failed, never sent again: the provider may have taken it, and the coach
   can press the button again, whereas a copy sent twice cannot be taken back;
2. due rows are leased (``funnel.db.claim``), so two workers never take one row;
3. each is rendered with ``test_message`` (its links lead to the pages that say
   it was a test) as the file reads now, and ``sending`` is committed before the
   provider is called: the intent;
4. the shared send step (``funnel.mail.sending``) hands them over, and the outcome
   is written on the row: sent, failed with the provider's reason, or queued again
   after a temporary failure (``MAX_ATTEMPTS`` tries in all).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.sequence import EmailFileError, EmailSource, read_email_file
from funnel.core.states import DeliveryState, TestSendState
from funnel.db import claim, lease_free
from funnel.mail import sending
from funnel.models import AdminTestSend, AdminUser
from funnel.newsletter.test_send import test_message
from funnel.transports import AuthError, Transport

QUEUED, SENDING, SENT, FAILED = (TestSendState.QUEUED, TestSendState.SENDING,
                                 TestSendState.SENT, TestSendState.FAILED)
MAX_ATTEMPTS = 3
# Enough to try every subject and both layouts; a loop or a stuck button is refused.
FLOOD_LIMIT = 10
FLOOD_WINDOW = timedelta(minutes=10)
BATCH = 20
INTERRUPTED = "the worker stopped while sending; send the test again"
ERROR_MAX = 1000


class TestSendRefused(FunnelError):
    """Nothing was queued; the message says why, in words for the coach."""

    __test__ = False  # a name pytest would otherwise take for a test class


def queue_test_send(session: Session, composer: Any, emails_dir: str | Path, src: EmailSource,
                    *, admin_id: int, address: str, now: datetime, broadcast: bool,
                    subject: str | None = None) -> AdminTestSend:
    """Check and queue one test of ``src`` to ``address``; commits. Raises
    ``TestSendRefused`` (and writes nothing) for a bad address, an email that does
    not render, or more than ``FLOOD_LIMIT`` tests in ``FLOOD_WINDOW``."""
    try:
        address = normalise_email(address)
    except FunnelError as exc:
        raise TestSendRefused(f"Not queued: {exc}") from exc
    try:
        rel = src.path.resolve().relative_to(Path(emails_dir).resolve())
    except ValueError as exc:
        raise TestSendRefused("Not queued: that email is not in the emails folder.") from exc
    try:
        test_message(composer, src, address, now, broadcast=broadcast, subject=subject)
    except TemplateError as exc:
        raise TestSendRefused(f"Not queued: the email does not render ({exc}).") from exc
    # The admin's row is the lock: two quick presses are counted one after the other.
    session.execute(select(AdminUser.id).where(AdminUser.id == admin_id).with_for_update())
    since = now - FLOOD_WINDOW
    counted = session.execute(
        select(func.count(), func.min(AdminTestSend.requested_at))
        .where(AdminTestSend.admin_id == admin_id, AdminTestSend.requested_at > since,
               AdminTestSend.state != FAILED)).one()
    if counted[0] >= FLOOD_LIMIT:
        session.rollback()
        wait = max(1, math.ceil((counted[1] + FLOOD_WINDOW - now).total_seconds() / 60))
        raise TestSendRefused(
            f"Not queued: {FLOOD_LIMIT} tests in {FLOOD_WINDOW.seconds // 60} minutes is the "
            f"most we send; try again in {wait} minute{'' if wait == 1 else 's'}.")
    row = AdminTestSend(admin_id=admin_id, address=address, email_path=rel.as_posix(),
                        slug=src.slug, broadcast=broadcast, subject=subject, requested_at=now,
                        state=QUEUED, attempts=0)
    session.add(row)
    session.commit()
    return row


def recent(session: Session, admin_id: int, slug: str, limit: int = 5) -> list[AdminTestSend]:
    """The admin's latest tests of one email, newest first."""
    return list(session.scalars(
        select(AdminTestSend).where(AdminTestSend.admin_id == admin_id, AdminTestSend.slug == slug)
        .order_by(AdminTestSend.requested_at.desc(), AdminTestSend.id.desc()).limit(limit)))


# The page shows the last few; a month keeps what a coach could ask about and
# lets the addresses typed for tests go with it.
KEEP = timedelta(days=30)


def forget_old(session: Session, now: datetime, older_than: timedelta = KEEP) -> int:
    """Delete finished tests requested before ``older_than``; returns how many."""
    from sqlalchemy import delete

    result = session.execute(delete(AdminTestSend).where(
        AdminTestSend.requested_at < now - older_than,
        AdminTestSend.state.in_((TestSendState.SENT, TestSendState.FAILED))))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def pending(rows: Sequence[AdminTestSend]) -> bool:
    return any(r.state in (QUEUED, SENDING) for r in rows)


# -- the worker's piece ------------------------------------------------------------

@dataclass
class DrainReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    interrupted: list[int] = field(default_factory=list)  # rows marked failed, not resent


@dataclass
class _Attempt:
    """What the send step writes on (it knows Delivery's states, not ours)."""

    attempts: int
    state: str = DeliveryState.SENDING
    error: str | None = None
    sent_at: datetime | None = None
    retry_at: datetime | None = None
    message_id: str | None = None
    provider_id: str | None = None


class _Ledger:
    """The send step's ledger: its withdrawals (on AuthError) are noted, and the
    outcomes are committed with the rows by ``drain``."""

    def __init__(self) -> None:
        self.withdrawn: list[Any] = []

    def delete(self, instance: Any) -> None:
        self.withdrawn.append(instance)

    def commit(self) -> None:
        pass


def drain(sessions: sessionmaker[Session], composer: Any, transport: Transport,
          emails_dir: str | Path, now: datetime, *, owner: str, lease_seconds: int = 300,
          stop: Any = None, batch_size: int = BATCH) -> DrainReport:
    """Send every queued test that is due (see the module docstring)."""
    report = DrainReport()
    started = time.monotonic()
    lease = timedelta(seconds=lease_seconds)
    first = True
    while not (stop and stop.is_set()):
        held_at = now + timedelta(seconds=time.monotonic() - started)
        with sessions() as s:
            if first:  # in the claim's transaction: one write per pass, not two
                report.interrupted = _fail_interrupted(s, held_at)
                report.failed += len(report.interrupted)
                first = False
            q = (select(AdminTestSend.id)
                 .where(AdminTestSend.state == QUEUED,
                        or_(AdminTestSend.next_attempt_at.is_(None),
                            AdminTestSend.next_attempt_at <= now),
                        lease_free(AdminTestSend.lease_until, held_at))
                 .order_by(AdminTestSend.requested_at, AdminTestSend.id).limit(batch_size))
            ids = claim(s, q, AdminTestSend, lease_until=held_at + lease, lease_owner=owner[-64:])
        if not ids:
            break
        report.claimed += len(ids)
        _send(sessions, ids, composer, transport, Path(emails_dir), now, owner[-64:], report)
    return report


def _fail_interrupted(s: Session, held_at: datetime) -> list[int]:
    """Rows in ``sending`` whose worker's lease ran out: it died between the intent and
    the outcome, so the provider may or may not have the email."""
    ids = list(s.scalars(select(AdminTestSend.id).where(
        AdminTestSend.state == SENDING, lease_free(AdminTestSend.lease_until, held_at))))
    if ids:
        s.execute(update(AdminTestSend).where(AdminTestSend.id.in_(ids))
                  .values(state=FAILED, error=INTERRUPTED, lease_until=None))
    return ids


def _send(sessions: sessionmaker[Session], ids: list[int], composer: Any, transport: Transport,
          root: Path, now: datetime, owner: str, report: DrainReport) -> None:
    with sessions() as s:
        rows = s.scalars(select(AdminTestSend).where(
            AdminTestSend.id.in_(ids), AdminTestSend.lease_owner == owner,
            AdminTestSend.state == QUEUED).order_by(AdminTestSend.id)).all()
        items: list[sending.Outgoing] = []
        for row in rows:
            problem = None
            try:
                src = read_email_file(root / row.email_path)
                msg = test_message(composer, src, row.address, now, broadcast=row.broadcast,
                                   subject=row.subject)
            except (OSError, UnicodeDecodeError, EmailFileError) as exc:
                problem = f"the email file cannot be read now ({exc})"
            except TemplateError as exc:
                problem = f"the email does not render now ({exc})"
            if problem is not None:
                _settle(row, FAILED, problem)
                report.failed += 1
                continue
            # One key per row: a resend after a temporary failure replaces, never adds.
            msg = dataclasses.replace(msg, key=f"{row.requested_at:%Y%m%dT%H%M%S}-test-"
                                               f"{row.slug}-{row.id}")
            row.state = SENDING
            row.attempts += 1
            items.append(sending.Outgoing(row, _Attempt(row.attempts), msg))
        s.commit()  # the intents are durable before anything is sent
        if not items:
            return
        ledger = _Ledger()
        try:
            sending.send(ledger, transport, items, now=now, max_attempts=MAX_ATTEMPTS)
        except AuthError as exc:
            for item in items:
                if item.delivery in ledger.withdrawn:
                    _settle(item.recipient, FAILED,
                            f"the mail provider refused our credentials ({exc})")
                    report.failed += 1
                else:
                    _record(item, report)
            s.commit()
            raise
        for item in items:
            _record(item, report)
        s.commit()


def _record(item: sending.Outgoing, report: DrainReport) -> None:
    row, done = item.recipient, item.delivery
    if done.state == DeliveryState.SENT:
        _settle(row, SENT, None)
        row.sent_at, row.message_id, row.provider_id = done.sent_at, done.message_id, done.provider_id
        report.sent += 1
    elif done.state == DeliveryState.RETRY:
        _settle(row, QUEUED, done.error)
        row.next_attempt_at = done.retry_at
        report.retried += 1
    else:  # failed, or unknown: it may have gone out, so it is never resent
        _settle(row, FAILED, done.error or "no answer from the mail provider")
        report.failed += 1


def _settle(row: AdminTestSend, state: str, error: str | None) -> None:
    row.state, row.lease_until = state, None
    row.error = error[:ERROR_MAX] if error else None
