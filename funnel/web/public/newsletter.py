"""The public newsletter archive: /newsletter, /newsletter/SLUG and the Atom feed.

Only broadcasts marked for the archive that have started going out are shown,
as the copy that was sent, rendered for nobody in particular.
"""

from __future__ import annotations

import functools
from pathlib import Path

from flask import Blueprint, Response, abort, render_template
from sqlalchemy import select

from funnel import runtime
from funnel.core.sequence import EmailFileError, load_sequence
from funnel.models import BROADCAST_SENDING, BROADCAST_SENT, Broadcast
from funnel.newsletter.archive import PublicIssue, atom_feed, public_variables, render_public
from funnel.newsletter.cadence import NEWSLETTER, Cadence, cadence
from funnel.newsletter.scheduling import frozen_source

bp = Blueprint("newsletter", __name__, url_prefix="/newsletter")


def _published():
    return (select(Broadcast)
            .where(Broadcast.archive.is_(True),
                   Broadcast.status.in_((BROADCAST_SENDING, BROADCAST_SENT)),
                   Broadcast.started_at.is_not(None))
            .order_by(Broadcast.started_at.desc(), Broadcast.id.desc()))


def _issue(row: Broadcast) -> PublicIssue:
    settings = runtime.rt().settings
    url = f"{settings.base_url}/newsletter/{row.slug}"
    variables = public_variables(settings.base_url, url, settings.postal_address)
    assert row.started_at is not None
    return render_public(frozen_source(row, settings.emails_dir), variables, row.started_at)


@bp.get("")
def index():
    rows = runtime.session().scalars(_published()).all()
    return render_template("newsletter/index.html", issues=[_issue(r) for r in rows])


@bp.get("/<slug>")
def issue(slug: str):
    if len(slug) > 100:
        abort(404)
    row = runtime.session().scalar(_published().where(Broadcast.slug == slug))
    if row is None:
        abort(404)
    return render_template("newsletter/issue.html", issue=_issue(row))


@bp.get("/feed.xml")
def feed():
    settings = runtime.rt().settings
    rows = runtime.session().scalars(_published().limit(50)).all()
    body = atom_feed([_issue(r) for r in rows], base_url=settings.base_url,
                     feed_url=f"{settings.base_url}/newsletter/feed.xml",
                     updated=runtime.now())
    return Response(body, mimetype="application/atom+xml")


def _sequence_stamp(emails_dir: str) -> tuple:
    folder = Path(emails_dir, "sequence")
    return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.md")))


@functools.lru_cache(maxsize=4)
def _cadence(emails_dir: str, _stamp: tuple) -> Cadence | None:
    try:
        return cadence(load_sequence(emails_dir))
    except (EmailFileError, OSError):
        return None


@bp.app_context_processor
def _cadence_for_pages() -> dict:
    """The welcome and landing pages state the plan's real rhythm (see cadence.py)."""
    emails_dir = runtime.rt().settings.emails_dir
    c = _cadence(emails_dir, _sequence_stamp(emails_dir))
    return {"cadence": c or Cadence(0, 0, 0, 0, True), "cadence_newsletter": NEWSLETTER}
