"""The landing page's sign-up POST (``site.signup``).

A sign-up that passes every check is usually answered before Flask, by
``funnel.web.public.fastsignup``, with the same checks in the same order; what it
hands to Flask after it has counted something comes with a ``FastDone`` so that
nothing is counted twice. ``FAST_SIGNUP=0`` sends every sign-up here and builds
the WTForms form for each (docs/performance.md, Fast paths).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import Flask, current_app, redirect, render_template, request, url_for
from werkzeug.sansio.utils import get_current_url

from funnel import runtime
from funnel.core.inputs import FunnelError
from funnel.http import ratelimits
from funnel.http.extensions import csrf
from funnel.subscribers import actions as subscribers
from funnel.subscribers import intake
from funnel.web.form_check import FormCheck
from funnel.web.forms import SignupForm
from funnel.web.public import crossorigin
from funnel.web.public.site import (
    SLOW_DOWN,
    UTM_KEYS,
    bp,
    intake_cap,
    made_page,
    page_response,
    valid_zone,
)

# The WSGI environ's key for what the layer before Flask already did (a FastDone).
FAST_DONE = "funnel.fast_signup"


@dataclass(frozen=True)
class FastDone:
    """What ``fastsignup`` did with a request it then handed to Flask: it counted the
    attempt (``attempt_ok``: within the limit), and, if it tried the INSERT, what
    the INSERT raised, which the view raises again so the answer is the plain one."""

    attempt_ok: bool
    error: Exception | None = None


def _again(form: SignupForm, status: int, **extra):
    """The page again with what was typed and why: a runner at a busy talk loses nothing."""
    return page_response(made_page(render_template(
        "landing.html", form=form, consent_text=subscribers.CONSENT_TEXT, **extra)), status)


def _limited(form: SignupForm):
    return _again(form, 429, limited=SLOW_DOWN)


@bp.post("/free-plan")
@csrf.exempt  # no per-visitor token: a browser's cross-site post is refused instead
def signup():
    done: FastDone | None = request.environ.get(FAST_DONE)
    if done is not None and done.error is not None:
        # Every check passed and the attempt was counted before Flask; the write failed.
        raise done.error
    # The trusted origins are only read for a post from another site.
    if crossorigin.refused(request, crossorigin.allowed_origins):
        from funnel.web.errors import render_error

        current_app.logger.info("sign-up refused: cross-origin post from %r",
                                request.headers.get("Origin"))
        return render_error(403, crossorigin.REFUSED)
    # Read first, as request.url was: a host TRUSTED_HOSTS refuses fails before any count.
    page = page_url(request.scheme, request.host, request.root_path, request.path,
                    request.query_string)
    # A form that passes is read without building it (funnel.web.form_check);
    # anything else builds it, which finds what is wrong and says so on the page.
    data = _checked_form()
    form = SignupForm() if data is None else None
    if not (done.attempt_ok if done is not None
            else ratelimits.hit("signup-attempt", "RATELIMIT_SIGNUP_ATTEMPTS")):
        return _limited(form or SignupForm())
    if form is not None:
        if not form.validate():
            return _again(form, 422)
        data = form.data
    assert data is not None
    if data["website"]:
        # A bot filled the honeypot: answer like a success, store nothing.
        return redirect(url_for("site.check_inbox"), code=303)
    # Only sign-ups that pass validation count: a typo costs nothing.
    if not ratelimits.within("signup", "RATELIMIT_SIGNUP"):
        return _limited(form or _validated())
    meta = subscribers.SignupMeta(
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent", ""),  # request.user_agent.string
        page=page,
        referrer=data["referrer"],
        utm={k: data[f"utm_{k}"] or "" for k in UTM_KEYS},
        via=data["via"],
    )
    try:
        row = intake.intake_row(
            email=data["email"] or "", first_name=data["first_name"],
            timezone=valid_zone(data["tz"]), meta=meta, now=runtime.now(),
        )
    except FunnelError as exc:
        form = form or _validated()
        getattr(form, exc.field).errors = [str(exc)]
        return _again(form, 422)
    if intake_cap().full(runtime.rt().intake()):
        from funnel.web.errors import render_error

        return render_error(503, "We can't take sign-ups for a little while. Please try "
                                 "again in an hour; nothing was stored.")
    # One INSERT, committed before the answer; whether the address is known, and
    # what to mail it, the worker decides (intake.take_intake).
    intake.record_intake(runtime.rt().intake(), row)
    ratelimits.hit("signup", "RATELIMIT_SIGNUP")
    runtime.rt().wake.set()  # the worker takes it in; the embedded one at once
    return redirect(url_for("site.check_inbox"), code=303)


def signup_check(app: Flask) -> FormCheck | None:
    """The sign-up form's check without the form (funnel.web.form_check), made once
    per app; None with FAST_SIGNUP off."""
    if not app.config.get("FAST_SIGNUP", True):
        return None
    check = app.extensions.get("funnel_signup_check")
    if check is None:
        with app.app_context():  # the form reads the app's settings when it is made
            check = app.extensions["funnel_signup_check"] = FormCheck(SignupForm(formdata=None))
    return check


def _checked_form() -> dict[str, str | None] | None:
    """The sign-up form's data when every field passes, or None: build the form.
    As FlaskForm reads a request: its form, unless files come with it."""
    check = signup_check(current_app._get_current_object())  # type: ignore[attr-defined]
    if check is None or request.files:
        return None
    return check.check(request.form)


def _validated() -> SignupForm:
    """The form as the plain path has it once it passed (its fields' errors empty lists)."""
    form = SignupForm()
    form.validate()
    return form


@functools.lru_cache(maxsize=256)
def page_url(scheme: str, host: str, root_path: str, path: str, query_string: bytes) -> str:
    """``request.url`` from its parts: the same few for every sign-up, and making
    it (IRI decoding) was a tenth of a sign-up's view."""
    return get_current_url(scheme, host, root_path, path, query_string)
