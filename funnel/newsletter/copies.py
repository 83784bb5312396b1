"""The email a broadcast delivery carried, for the reader's "view in browser" link."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session

from funnel.core.sequence import EmailSource
from funnel.models import BroadcastRecipient, Delivery
from funnel.newsletter.scheduling import find, frozen_source
from funnel.newsletter.subject_tests import subjects_of


def broadcast_copy(session: Session, d: Delivery, emails_dir: str) -> EmailSource | None:
    """The copy frozen at scheduling, with the subject this reader got in a subject test."""
    row = find(session, d.step_slug)
    if row is None:
        return None
    src = frozen_source(row, emails_dir)
    variant = session.scalar(select(BroadcastRecipient.variant).where(
        BroadcastRecipient.broadcast_id == row.id,
        BroadcastRecipient.subscriber_id == d.subscriber_id))
    subjects = subjects_of(row)
    if variant is not None and variant < len(subjects):
        src = dataclasses.replace(src, meta={**src.meta, "subject": subjects[variant]})
    return src
