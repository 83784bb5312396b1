"""The worker's own check of a sign-up intake row before it becomes anyone.

Every front (landing page, embedded form, API) checks what it is sent before it
writes the row, but the row is only text in a table: anything that can write to
the table (a bug, a restore, an operator's INSERT) could put an address there
that no form would take. So the worker asks the same rules again, the ones the
fronts use (``funnel.core.inputs``), and a row that fails is refused, with its reason,
rather than mailed. No Flask and no database in here.
"""

from __future__ import annotations

from typing import Protocol

from funnel.core.inputs import FunnelError, clean_first_name, normalise_email, time_zones
from funnel.core.states import IntakeVia

VIAS = frozenset(str(v) for v in IntakeVia)
REASON_SIZE = 200  # the column's size


class IntakeFields(Protocol):
    email: str
    first_name: str | None
    timezone: str
    via: str | None


def refusal(row: IntakeFields) -> str | None:
    """Why ``row`` cannot be taken in, in words for the operator (never the
    address itself: the log and the admin pages are not for personal data), or
    None when it passes every rule a front applies."""
    email = row.email if isinstance(row.email, str) else ""
    try:
        # The fronts store the address as normalise_email returns it; any other
        # form (a CRLF, spaces, capitals, a second @) did not come through them.
        if normalise_email(email) != email:
            return "the address is not in the form the sign-up rules give it"
    except FunnelError as exc:
        return f"the address fails the sign-up rules: {exc}"[:REASON_SIZE]
    try:
        if row.first_name is not None and clean_first_name(row.first_name) != row.first_name:
            return "the first name is not in the form the sign-up rules give it"
    except FunnelError as exc:
        return f"the first name fails the sign-up rules: {exc}"[:REASON_SIZE]
    if row.timezone not in time_zones():
        return "the time zone is not one a sign-up accepts"
    if row.via is not None and row.via not in VIAS:
        return "the row does not say which front wrote it"
    return None
