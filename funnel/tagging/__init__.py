"""Tags on subscribers: the use cases every front (admin, API, CLI, import, rules) calls.

Adding and removing work on a *set* of subscribers given as a SELECT of their ids,
in one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` or one ``DELETE`` per tag:
tagging 100,000 people is a statement, not 100,000 round trips. The callers commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, Select, delete, func, literal, select, true
from sqlalchemy.orm import Session

from funnel.core.states import TagSource
from funnel.models import Subscriber, SubscriberTag, UTCDateTime
from funnel.tagging.names import TagError, clean_reason, parse_tag, parse_tags

__all__ = ["TagError", "TagInfo", "add_tag", "add_tag_where", "clean_reason", "parse_tag",
           "parse_tags", "remove_tag", "remove_tag_where", "tag_counts", "tag_names",
           "tags_of"]


@dataclass(frozen=True)
class TagInfo:
    tag: str
    added_at: datetime
    source: str
    reason: str | None


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(SubscriberTag)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(SubscriberTag)


def add_tag_where(session: Session, tag: str, who: Select, *, now: datetime,
                  source: TagSource | str, reason: str | None = None) -> int:
    """Tag everyone ``who`` (a SELECT of subscriber ids) selects who has not got it
    yet; returns how many got it now. Someone who already has it keeps their
    first ``added_at`` and reason."""
    tag = parse_tag(tag)
    source = TagSource(source)
    reason = clean_reason(reason)
    rows = (select(Subscriber.id, literal(tag), literal(now, UTCDateTime()),
                   literal(str(source)), literal(reason))
            .where(Subscriber.id.in_(who))
            .where(true()))  # SQLite needs a WHERE before ON CONFLICT after a SELECT
    stmt = (_insert(session)
            .from_select(["subscriber_id", "tag", "added_at", "source", "reason"], rows)
            .on_conflict_do_nothing()
            # psycopg gives no rowcount for INSERT … SELECT … ON CONFLICT: count what came back.
            .returning(SubscriberTag.subscriber_id))
    return len(session.execute(stmt).all())


def remove_tag_where(session: Session, tag: str, who: Select) -> int:
    """Take ``tag`` off everyone ``who`` selects; returns how many had it."""
    tag = parse_tag(tag)
    stmt = delete(SubscriberTag).where(SubscriberTag.tag == tag,
                                       SubscriberTag.subscriber_id.in_(who))
    result: CursorResult = session.execute(stmt)  # type: ignore[assignment]
    return int(result.rowcount or 0)


def _one(subscriber_id: int) -> Select:
    return select(Subscriber.id).where(Subscriber.id == subscriber_id)


def add_tag(session: Session, subscriber_id: int, tag: str, *, now: datetime,
            source: TagSource | str, reason: str | None = None) -> bool:
    """Tag one subscriber; False if they already had it."""
    return add_tag_where(session, tag, _one(subscriber_id), now=now, source=source,
                         reason=reason) > 0


def remove_tag(session: Session, subscriber_id: int, tag: str) -> bool:
    return remove_tag_where(session, tag, _one(subscriber_id)) > 0


def tags_of(session: Session, subscriber_id: int) -> list[TagInfo]:
    rows = session.execute(
        select(SubscriberTag.tag, SubscriberTag.added_at, SubscriberTag.source,
               SubscriberTag.reason)
        .where(SubscriberTag.subscriber_id == subscriber_id).order_by(SubscriberTag.tag))
    return [TagInfo(*row) for row in rows]


def tag_names(session: Session, subscriber_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each subscriber's tag names, sorted, for a batch (one query)."""
    ids = list(subscriber_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    for sid, tag in session.execute(
            select(SubscriberTag.subscriber_id, SubscriberTag.tag)
            .where(SubscriberTag.subscriber_id.in_(ids))
            .order_by(SubscriberTag.subscriber_id, SubscriberTag.tag)):
        out[sid].append(tag)
    return out


def tag_counts(session: Session) -> list[tuple[str, int]]:
    """Every tag in use with how many subscribers have it, by name."""
    return [(tag, int(n)) for tag, n in session.execute(
        select(SubscriberTag.tag, func.count()).group_by(SubscriberTag.tag)
        .order_by(SubscriberTag.tag))]
