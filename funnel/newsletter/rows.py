"""A newsletter batch as plain rows: its recipients with what the send step, the
composer and the hold checks read of their subscriber (one statement straight
from the driver), their deliveries, and the writes back, one set-based statement
per kind of change (``Ledger``), as the drip's batch does (``funnel.drip.rows``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session

from funnel.drip.bulk import insert_many, update_many
from funnel.drip.rows import DELIVERY_COLUMNS, DELIVERY_FIELDS, IDS, DeliveryRow, read
from funnel.hooks import capture
from funnel.mail.sending import BROADCAST, SENT
from funnel.models import Broadcast, BroadcastRecipient, Delivery, Subscriber

RECIPIENT_FIELDS = ("outcome", "due_at", "lease_until")
DELIVERY = cast(Table, Delivery.__table__)


@dataclass(slots=True, eq=False)
class RecipientRow:
    """A ``broadcast_recipient`` row with what is read of its subscriber (the
    composer takes it for the subscriber: the names are theirs)."""

    id: int
    broadcast_id: int
    subscriber_id: int
    outcome: str | None
    due_at: datetime | None
    lease_until: datetime | None
    lease_owner: str | None
    variant: int | None
    public_id: str
    email: str
    first_name: str | None
    status: str
    wants_newsletter: bool
    paused_until: datetime | None
    broadcast_status: str
    tag_names: frozenset[str] = frozenset()  # for content by tag ({% if "x" in tags %})

    def changes(self) -> tuple:
        """The columns a batch may change (RECIPIENT_FIELDS), in that order."""
        return (self.outcome, self.due_at, self.lease_until)


_R, _S = BroadcastRecipient, Subscriber
_RECIPIENTS = (
    select(_R.id, _R.broadcast_id, _R.subscriber_id, _R.outcome, _R.due_at, _R.lease_until,
           _R.lease_owner, _R.variant, _S.public_id, _S.email, _S.first_name, _S.status,
           _S.wants_newsletter, _S.paused_until, Broadcast.status)
    .select_from(_R).join(_S, _S.id == _R.subscriber_id).join(Broadcast,
                                                               Broadcast.id == _R.broadcast_id)
    .where(_R.id.op("IN")(IDS)).order_by(_R.subscriber_id, _R.id))
# The subscriber's row is locked with the recipient's: an unsubscribe waits or wins.
_RECIPIENTS_LOCKED = _RECIPIENTS.with_for_update(of=(_R, _S))
_DELIVERIES = (select(*DELIVERY_COLUMNS)
               .where(Delivery.kind == bindparam("kind"), Delivery.step_slug == bindparam("slug"),
                      Delivery.subscriber_id.op("IN")(IDS))
               .order_by(Delivery.id))


def recipients(s: Session, ids: list[int], *, lock: bool) -> list[RecipientRow]:
    """The recipient rows ``ids`` with their subscribers, by subscriber; ``lock``
    takes both rows' locks (on SQLite the transaction holds the one write lock)."""
    conn = s.connection()
    q = _RECIPIENTS_LOCKED if lock and conn.dialect.name == "postgresql" else _RECIPIENTS
    return [RecipientRow(*row) for row in read(conn, q, ids)]


def deliveries(s: Session, slug: str, subscriber_ids: list[int]) -> list[DeliveryRow]:
    """The broadcast ``slug``'s deliveries to these subscribers (one each at most)."""
    return [DeliveryRow(*row) for row in read(s.connection(), _DELIVERIES, subscriber_ids,
                                              {"kind": str(BROADCAST), "slug": slug})]


class Ledger:
    """The rows of one transaction and what changed in them; ``delete`` and
    ``commit`` are all the send step asks of a session. ``commit`` writes each
    kind of change with one statement (an executemany of the columns that
    changed: a column nobody changed is never written back), queues
    ``email.sent`` for the deliveries that went out (``hooks.capture.sent``: the
    ORM's listener does not see Core statements), then commits."""

    def __init__(self, session: Session, recs: Iterable[RecipientRow],
                 rows: Iterable[DeliveryRow], clock: Callable[[], datetime]) -> None:
        self.session, self.clock = session, clock
        self.recs = list(recs)
        self.rows = list(rows)
        self.new: list[DeliveryRow] = []
        self._deleted: list[DeliveryRow] = []
        self._mark()

    def _mark(self) -> None:
        self._before_recs = {r.id: r.changes() for r in self.recs}
        self._before_rows = {d.public_id: d.changes() for d in self.rows}

    def add(self, d: DeliveryRow) -> None:
        self.new.append(d)

    def delete(self, d: DeliveryRow) -> None:
        self._deleted.append(d)

    def flush(self) -> None:
        s = self.session
        gone = {d.public_id for d in self._deleted}
        new = [d for d in self.new if d.public_id not in gone]
        if new:
            insert_many(s, DELIVERY, [
                {"public_id": d.public_id, "subscriber_id": d.subscriber_id, "kind": d.kind,
                 "step_slug": d.step_slug, "state": d.state, "attempts": d.attempts,
                 "created_at": d.created_at, "error": d.error, "message_id": d.message_id,
                 "provider_id": d.provider_id, "sent_at": d.sent_at, "retry_at": d.retry_at}
                for d in new])
        before = self._before_rows
        changed = [(d, before[d.public_id], d.changes()) for d in self.rows
                   if d.public_id not in gone]
        # A row inserted by this ledger has no id here: written by its public id.
        update_many(s, "delivery_by_id", DELIVERY_FIELDS,
                    [(d.id, was, now) for d, was, now in changed if d.id is not None])
        update_many(s, "delivery", DELIVERY_FIELDS,
                    [(d.public_id, was, now) for d, was, now in changed if d.id is None])
        update_many(s, "broadcast_recipient", RECIPIENT_FIELDS,
                    [(r.id, self._before_recs[r.id], r.changes()) for r in self.recs])
        # Deleted last, as the ORM does (on SQLite a new row's id depends on it).
        if stored := sorted(gone & set(before)):
            s.execute(delete(Delivery).where(Delivery.public_id.in_(stored)))
        sent = [d for d in new if d.state == SENT] + [
            d for d, was, _now in changed if d.state == SENT and was[0] != SENT]
        if sent:
            capture.sent(s.connection(), sent, self.clock())
        self.rows = [d for d in self.rows if d.public_id not in gone] + new
        self.new, self._deleted = [], []
        self._mark()

    def commit(self) -> None:
        self.flush()
        self.session.commit()
