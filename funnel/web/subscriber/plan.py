"""The plan as a download (a printable page and its PDF, behind a personal signed
link) and the pictures from ``emails/images/`` under content-hashed names."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

from flask import Blueprint, Flask, abort, render_template

from funnel import runtime
from funnel.core import lifecycle
from funnel.core.sequence import load_sequence
from funnel.core.tokens import BadToken
from funnel.plan.document import build_weeks, pdf_bytes
from funnel.subscribers import actions as subscribers
from funnel.web.errors import render_error
from funnel.web.subscriber import fresh_links

bp = Blueprint("plan", __name__)

YEAR = "public, max-age=31536000, immutable"
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
_pdf_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_pdf_lock = threading.Lock()


@bp.get("/media/<name>")
def media(name: str):
    served = runtime.rt().composer.media.serve(name)
    if served is None:
        abort(404)
    # An outdated fingerprint (an old email) gets today's picture, cached briefly.
    cache = YEAR if served.current else "public, max-age=300"
    return served.body, 200, {"Content-Type": served.content_type, "Cache-Control": cache}


def image_url(name: str) -> str:
    """Site address of a picture in emails/images/ (SVG stays SVG on the web)."""
    hashed = runtime.rt().composer.media.hashed_name(name, for_email=False)
    return f"/media/{hashed}" if hashed else ""


def my_plan_path(sub) -> str:
    """The subscriber's personal plan link, as a path on this site."""
    links = runtime.rt().composer.links
    return links.plan(sub.public_id)[len(links.base_url):]


def _plan_subscriber(token: str):
    """(subscriber, None) for a confirmed reader's link, else (None, the answer)."""
    try:
        public_id = fresh_links.load("plan", token)
    except fresh_links.Expired as exc:
        return None, exc.answer
    except BadToken:
        return None, render_error(400, "This link isn't valid. Open it straight from "
                                       "your email or your preferences page.")
    sub = subscribers.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        return None, render_error(404, "There is nothing stored for this link.")
    if sub.status != lifecycle.CONFIRMED:
        return None, render_error(403, "The plan opens once your address is confirmed: "
                                       "look for our email with the confirmation link.")
    return sub, None


def _render_page(sub, token: str, *, for_pdf: bool) -> str:
    composer = runtime.rt().composer
    sequence = load_sequence(composer.settings.emails_dir)
    weeks = build_weeks(sequence, composer.renderer.render_body,
                        composer.variables(sub, "plan"))
    first = (sub.first_name or "").strip()
    return render_template("plan.html", weeks=weeks, for_pdf=for_pdf, first_name=first,
                           pdf_url=f"/plan/{token}.pdf")


def _fingerprint() -> str:
    """Changes when anything the PDF is made from changes."""
    emails = Path(runtime.rt().settings.emails_dir)
    h = hashlib.sha256()
    for p in sorted([*emails.glob("sequence/*.md"), *emails.glob("images/*"),
                     emails / "coach.yml", Path(bp.root_path).parent.parent / "templates" / "plan.html"]):
        try:
            h.update(f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size}".encode())
        except OSError:
            h.update(str(p).encode())
    return h.hexdigest()


@bp.get("/plan/<token>")
def page(token: str):
    sub, error = _plan_subscriber(token)
    if error:
        return error
    return _render_page(sub, token, for_pdf=False), 200, PRIVATE


@bp.get("/plan/<token>.pdf")
def pdf(token: str):
    sub, error = _plan_subscriber(token)
    if error:
        return error
    key = (sub.public_id, _fingerprint())
    with _pdf_lock:
        data = _pdf_cache.get(key)
    if data is None:
        # WeasyPrint takes a second or two: keep the last few, per reader.
        composer = runtime.rt().composer
        data = pdf_bytes(_render_page(sub, token, for_pdf=True),
                         base_url=composer.links.base_url, media=composer.media)
        with _pdf_lock:
            _pdf_cache[key] = data
            while len(_pdf_cache) > 32:
                _pdf_cache.popitem(last=False)
    return data, 200, {
        **PRIVATE, "Content-Type": "application/pdf",
        "Content-Disposition": 'attachment; filename="run-stronger-plan.pdf"',
    }


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _globals() -> dict[str, object]:
        return {"image_url": image_url, "coach": runtime.rt().composer.coach,
                "my_plan_path": my_plan_path}

    if not app.testing and not app.config.get("TESTING"):
        # Draw the email PNGs at start-up, in the background, so no reader waits.
        threading.Thread(target=app.extensions["funnel"].composer.media.warm,
                         daemon=True).start()
