"""The sign-up form embedded on other sites (the coach's blog).

The form is plain HTML that posts here from another origin, so it cannot carry
this site's CSRF cookie. In its place the request's origin is checked: the
``Origin`` header (or, when a browser withholds it, the ``Referer``) must be
exactly one of ``EMBED_ORIGINS`` or this site itself; anything else gets a 403.
A browser sets both headers itself, and a page cannot forge them, so a site
not on the list cannot sign people up through a visitor's browser.

Everything else is the landing page's: the same form fields and honeypot, the
same per-IP rate limit (shared with the landing page), the same one-row
sign-up intake the worker takes in (so the answer's timing says nothing about
the address), and the same check-your-inbox page. The site
the person signed up on is kept in their consent record (its ``page``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import escape

from funnel import runtime
from funnel.core.inputs import FunnelError
from funnel.core.states import IntakeVia
from funnel.http import ratelimits
from funnel.http.extensions import csrf
from funnel.subscribers import actions as subscribers
from funnel.subscribers import intake
from funnel.web.forms import SignupForm
from funnel.web.headers import hashed_policy
from funnel.web.public.crossorigin import allowed_origins, normalise_origin

bp = Blueprint("embed", __name__, url_prefix="/embed")

REFUSED = ("This sign-up form can only be used on the sites the coach has allowed. "
           "Please sign up on the Run Stronger site instead.")


def request_origin() -> str | None:
    """Where the post came from: the Origin header, else the Referer's origin."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return normalise_origin(origin)
    return normalise_origin(request.referrer)


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _cors(resp: Response, origin: str) -> Response:
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Vary"] = "Origin"
    return resp


@bp.post("/subscribe")
@csrf.exempt
def subscribe():
    origin = request_origin()
    if origin is None or origin not in allowed_origins():
        current_app.logger.info("embedded sign-up refused from origin %r", origin)
        if wants_json():
            return jsonify(ok=False, error=REFUSED), 403
        from funnel.web.errors import render_error

        return render_error(403, REFUSED)
    # The same per-client budget as the landing page's form (web.ratelimits).
    if not ratelimits.hit("signup-attempt", "RATELIMIT_SIGNUP_ATTEMPTS"):
        from funnel.web.public.site import SLOW_DOWN

        if wants_json():
            return _cors(jsonify(ok=False, error=SLOW_DOWN), origin), 429
        from funnel.web.errors import render_error

        return render_error(429, SLOW_DOWN)
    in_frame = request.form.get("frame") == "1"
    form = SignupForm(meta={"csrf": False})
    if not form.validate():
        return _invalid(form, origin)
    if not ratelimits.within("signup", "RATELIMIT_SIGNUP"):
        from funnel.web.public.site import SLOW_DOWN

        if wants_json():
            return _cors(jsonify(ok=False, error=SLOW_DOWN), origin), 429
        from funnel.web.errors import render_error

        return render_error(429, SLOW_DOWN)
    done = url_for("embed.thanks") if in_frame else url_for("site.check_inbox")
    if not form.website.data:  # a filled honeypot: answer like a success, store nothing
        # The page the form sits on, when the browser says; else just the site.
        ref = request.referrer or ""
        page = ref if normalise_origin(ref) == origin else origin + "/"
        meta = subscribers.SignupMeta(
            ip=request.remote_addr, user_agent=request.user_agent.string,
            page=page[:500], referrer=urlsplit(origin).hostname,
            utm={k: getattr(form, f"utm_{k}").data or ""
                 for k in ("source", "medium", "campaign", "term", "content")},
        )
        try:
            row = intake.intake_row(
                email=form.email.data, first_name=form.first_name.data,
                timezone=_zone(form.tz.data), meta=meta, now=runtime.now(),
                front=IntakeVia.EMBED)
        except FunnelError as exc:
            getattr(form, exc.field).errors = [str(exc)]
            return _invalid(form, origin)
        # The landing page's one INSERT: the answer and its time are the same
        # whoever the address belongs to; the worker decides (intake.take_intake).
        intake.record_intake(runtime.rt().intake(), row)
        ratelimits.hit("signup", "RATELIMIT_SIGNUP")
        runtime.rt().wake.set()  # the worker takes it in; the embedded one at once
    if wants_json():
        return _cors(jsonify(ok=True, message="Check your inbox: we've sent you a link to "
                             "confirm your address."), origin)
    return redirect(done, code=303)


def _zone(name: str | None) -> str:
    from funnel.web.public.site import valid_zone

    return valid_zone(name)


def _invalid(form: SignupForm, origin: str):
    errors = {name: list(errs) for name, errs in form.errors.items()}
    if wants_json():
        return _cors(jsonify(ok=False, errors=errors), origin), 422
    # Corrected on this site's own landing page.
    page = SignupForm(formdata=None)
    page.email.data, page.first_name.data = form.email.data, form.first_name.data
    page.tz.data = form.tz.data
    page.email.errors = list(form.email.errors) or []
    page.first_name.errors = list(form.first_name.errors) or []
    if not (page.email.errors or page.first_name.errors):
        page.email.errors = ["Please check the form and try again."]
    from funnel.web.public.site import page_response

    html = render_template("landing.html", form=page, consent_text=subscribers.CONSENT_TEXT)
    return page_response((html, hashed_policy(html)), 422)


@bp.get("/form")
def form_page():
    """The iframe variant: a bare form that allowed sites may frame."""
    resp = Response(render_template("embed_form.html", consent_text=subscribers.CONSENT_TEXT,
                                    action=url_for("embed.subscribe")))
    return _frameable(resp)


@bp.get("/thanks")
def thanks():
    return _frameable(Response(render_template("embed_thanks.html")))


def _frameable(resp: Response) -> Response:
    from funnel.web.headers import content_security_policy, csp_nonce

    ancestors = " ".join(sorted(allowed_origins()))
    # X-Frame-Options cannot list sites, so the CSP's frame-ancestors says who may
    # frame this page (web.headers then leaves X-Frame-Options out).
    resp.headers["Content-Security-Policy"] = content_security_policy(csp_nonce()).replace(
        "frame-ancestors 'none'", f"frame-ancestors 'self' {ancestors}")
    return resp


def snippet(base_url: str) -> str:
    """The plain HTML form the coach pastes under the article."""
    action = escape(base_url.rstrip("/") + "/embed/subscribe")
    return f"""<form method="post" action="{action}" class="runstronger-signup">
  <p><label for="rs-email">Your email address</label>
  <input type="email" id="rs-email" name="email" required maxlength="254" autocomplete="email"></p>
  <p><label for="rs-first-name">First name (optional)</label>
  <input type="text" id="rs-first-name" name="first_name" maxlength="80" autocomplete="given-name"></p>
  <div style="position:absolute;left:-10000px" aria-hidden="true">
    <label for="rs-website">Leave this field empty</label>
    <input type="text" id="rs-website" name="website" tabindex="-1" autocomplete="off">
  </div>
  <input type="hidden" name="tz" id="rs-tz">
  <p><small>{escape(subscribers.CONSENT_TEXT)} We'll send one email first to check it's really you.</small></p>
  <p><button type="submit">Send me the free plan</button></p>
</form>
<script>try{{document.getElementById("rs-tz").value=Intl.DateTimeFormat().resolvedOptions().timeZone||""}}catch(e){{}}</script>"""


def iframe_snippet(base_url: str) -> str:
    src = escape(base_url.rstrip("/") + "/embed/form")
    return (f'<iframe src="{src}" title="Run Stronger free plan sign-up" '
            'style="width:100%;max-width:32rem;height:26rem;border:0"></iframe>')
