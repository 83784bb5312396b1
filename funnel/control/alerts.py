"""Telling the admins when sends fail. Runs in the worker, never in a web request.

Off unless ``FAILURE_ALERTS`` is on (it is off by default in development and on
by default in production). After a worker pass, if sends failed or were held
since the last alert, one plain email goes to every admin account (or to
``FAILURE_ALERTS_TO``), at most once per ``FAILURE_ALERTS_EVERY_MINUTES``. The
alert names emails and reasons and counts, never a subscriber.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from funnel.config import Settings
from funnel.control.failures import PROBLEM_STATES
from funnel.models import AdminUser, AppState, Delivery
from funnel.transports import Message, Transport

log = logging.getLogger(__name__)

STATE_KEY = "failure_alert_at"
DEFAULT_EVERY = timedelta(minutes=60)


def _recipients(session: Session, settings: Settings) -> list[str]:
    configured = [a.strip() for a in (getattr(settings, "failure_alerts_to", "") or "").split(",")
                  if a.strip()]
    return configured or list(session.scalars(select(AdminUser.email).order_by(AdminUser.id)))


def compose(problems: list[tuple[str, str, str | None, int]], settings: Settings,
            now: datetime) -> tuple[str, str]:
    """(subject, text) for rows of (step, state, reason, count)."""
    total = sum(n for *_rest, n in problems)
    lines = [f"{total} email{'s' if total != 1 else ''} could not be sent since the last alert.",
             "", "By email, state and reason:"]
    for slug, state, reason, n in problems:
        lines.append(f"- {slug}: {n} {state} ({(reason or 'no reason recorded')[:200]})")
    lines += ["", "Held sends go out by themselves once their email is fixed; failed ones can",
              f"be retried from the dashboard: {settings.base_url}/admin/#failures-title", ""]
    return f"[Run Stronger] {total} email{'s' if total != 1 else ''} could not be sent", \
        "\n".join(lines)


def send_if_due(sessions: sessionmaker[Session], settings: Settings, transport: Transport,
                now: datetime) -> bool:
    """Send one alert if enabled, due and needed; True when one went out."""
    if not getattr(settings, "failure_alerts", False):
        return False
    every = timedelta(minutes=getattr(settings, "failure_alerts_every_minutes", 60))
    with sessions() as s:
        state = s.get(AppState, STATE_KEY)
        last = datetime.fromisoformat(state.value) if state else None
        if last is not None and now - last < every:
            return False
        since = last or datetime(1970, 1, 1, tzinfo=UTC)
        at = func.coalesce(Delivery.sent_at, Delivery.created_at)
        problems = [tuple(r) for r in s.execute(
            select(Delivery.step_slug, Delivery.state, func.min(Delivery.error), func.count())
            .where(Delivery.state.in_(PROBLEM_STATES), at > since)
            .group_by(Delivery.step_slug, Delivery.state)
            .order_by(Delivery.step_slug, Delivery.state)
        ).all()]
        to = _recipients(s, settings)
        if not problems or not to:
            return False
        # Claimed before sending: two workers finishing at once send one alert.
        if state is None:
            s.add(AppState(key=STATE_KEY, value=now.isoformat()))
        else:
            state.value = now.isoformat()
        try:
            s.commit()
        except Exception:
            s.rollback()
            return False
    subject, text = compose(problems, settings, now)  # type: ignore[arg-type]
    messages = admin_messages(settings, to, subject, text, now, kind="alert")
    try:
        transport.send(messages)
    except Exception:  # an alert must never stop the worker
        log.exception("could not send the failure alert")
        return False
    return True


def admin_messages(settings: Settings, to: list[str], subject: str, text: str,
                   now: datetime, *, kind: str) -> list[Message]:
    """Plain emails to the admins (failure alerts, the brakes), one per address."""
    domain = settings.mail_from.rpartition("@")[2].rstrip(">") or "localhost"
    return [Message(
        key=f"{now:%Y%m%dT%H%M%S}-{kind}-{secrets.token_hex(4)}", to=address, subject=subject,
        html="<pre>" + text.replace("&", "&amp;").replace("<", "&lt;") + "</pre>", text=text,
        sender=settings.mail_from, date=now, message_id=make_msgid(domain=domain),
    ) for address in to]
