"""/api/v1: the list for other tools, behind API keys. Errors are problem details.

A key arrives only in the ``Authorization: Bearer`` header (never in the query
string, which access logs keep), and is never logged or echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from jsonschema import Draft202012Validator
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from funnel import runtime, tagging
from funnel.accounts import api_keys as keys
from funnel.api import spec
from funnel.api.problems import Problem, from_status
from funnel.api.shapes import _decode_cursor, _encode_cursor, _when, show
from funnel.core import lifecycle
from funnel.core.inputs import FunnelError, nul_problem, time_zones
from funnel.core.states import IntakeVia, TagSource
from funnel.http.extensions import csrf, limiter
from funnel.importing import importer
from funnel.models import ApiKey, Subscriber, SubscriberTag
from funnel.reporting import stats as figures
from funnel.subscribers import actions as subscribers
from funnel.subscribers import intake, privacy

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

VALIDATORS = {name: Draft202012Validator(schema) for name, schema in
              (("SignUp", spec.SIGNUP), ("Import", spec.IMPORT), ("Update", spec.UPDATE))}
LAST_USED_EVERY = timedelta(minutes=1)


# -- authentication, scopes, rate limit --------------------------------------------

def _presented() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_key() -> ApiKey | None:
    """The request's live key (looked up once per request), or None."""
    if "api_key" not in g:
        token = _presented()
        g.api_key = keys.verify(runtime.session(), token) if token else None
    return g.api_key


def rate_key() -> str:
    """Each key has its own budget; requests without a live key share their IP's."""
    key = current_key()
    return f"api-key:{key.id}" if key is not None else f"api-anon:{request.remote_addr}"


limiter.limit(lambda: current_app.config["API_RATELIMIT"], key_func=rate_key,
              exempt_when=lambda: request.endpoint == "api.openapi")(bp)


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    key = current_key()
    if key is None:
        presented = _presented() is not None
        # Operators see refusals; never the key itself (nor any part of its secret).
        current_app.logger.warning("API request to %s refused: %s", request.path,
                                   "invalid or revoked key" if presented else "no key")
        detail = ("Send a live API key as 'Authorization: Bearer <key>'."
                  if not presented else "That API key is not valid or was revoked.")
        raise Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="api"'})
    now = runtime.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        key.last_used_at = now
        runtime.session().commit()
    return None


def needs(scope: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            key = current_key()
            if key is None or scope not in key.scope_set():
                raise Problem(403, f"This API key lacks the '{scope}' scope.")
            return view(*args, **kwargs)
        return checked
    return wrap


@bp.errorhandler(Problem)
def _problem(exc: Problem) -> Response:
    return exc.response()


@bp.errorhandler(RateLimitExceeded)
def _too_many(exc: RateLimitExceeded) -> Response:
    resp = Problem(429, f"Rate limit for this key reached ({exc.description}). Try again later.")
    return resp.response()


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    return from_status(exc.code or 500, exc.description)


# -- reading bodies ------------------------------------------------------------------

def body(schema: str) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise Problem(415, "Send the body as application/json.")
    try:
        data = json.loads(request.get_data(cache=False) or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}") from exc
    nul = nul_problem(data, "the body")
    if nul:
        raise Problem(400, nul, title="Invalid character")
    errors = sorted(VALIDATORS[schema].iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise Problem(422, "The body does not fit the schema.", title="Invalid body", errors=[
            {"pointer": "".join(f"/{p}" for p in e.absolute_path), "detail": e.message[:300]}
            for e in errors[:20]
        ])
    return data


def _domain(exc: FunnelError) -> Problem:
    pointer = {"timezone": "/time_zone", "pause": "/paused_until"}.get(exc.field, f"/{exc.field}")
    return Problem(422, str(exc), title="Invalid value",
                   errors=[{"pointer": pointer, "detail": str(exc)}])


# -- subscribers ------------------------------------------------------------------


def _find(public_id: str) -> Subscriber:
    sub = subscribers.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        raise Problem(404, "No subscriber with this id.")
    return sub


@bp.get("/subscribers")
@needs("subscribers:read")
def list_subscribers() -> Response:
    args = request.args
    try:
        limit = int(args.get("limit", 50))
    except ValueError as exc:
        raise Problem(400, "limit must be a whole number.") from exc
    if not 1 <= limit <= spec.MAX_PAGE:
        raise Problem(400, f"limit must be between 1 and {spec.MAX_PAGE}.")
    q = select(Subscriber).order_by(Subscriber.id).limit(limit + 1)
    status = args.get("status")
    if status is not None:
        if status not in lifecycle.STATUSES:
            raise Problem(400, "status must be one of: " + ", ".join(lifecycle.STATUSES))
        q = q.where(Subscriber.status == status)
    text = args.get("email_contains")
    if text:
        if len(text) > 254:
            raise Problem(400, "email_contains is too long.")
        if not text.isprintable():
            # No address holds a control character, and PostgreSQL refuses NUL outright.
            raise Problem(400, "email_contains must not hold control characters.")
        q = q.where(Subscriber.email.contains(text.lower(), autoescape=True))
    if args.get("created_after"):
        q = q.where(Subscriber.created_at > _when(args["created_after"], "created_after"))
    if args.get("created_before"):
        q = q.where(Subscriber.created_at < _when(args["created_before"], "created_before"))
    if args.get("tag") is not None:
        try:
            tag = tagging.parse_tag(args["tag"])
        except FunnelError as exc:
            raise Problem(400, str(exc)) from exc
        q = q.where(Subscriber.id.in_(select(SubscriberTag.subscriber_id)
                                      .where(SubscriberTag.tag == tag)))
    if args.get("cursor"):
        q = q.where(Subscriber.id > _decode_cursor(args["cursor"][:200]))
    rows = list(runtime.session().scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    tags = tagging.tag_names(runtime.session(), [s.id for s in rows])
    return jsonify(data=[show(s, tags[s.id]) for s in rows],
                   next_cursor=_encode_cursor(rows[-1].id) if more and rows else None)


@bp.post("/subscribers")
@needs("subscribers:write")
def sign_up() -> tuple[Response, int]:
    data = body("SignUp")
    key = current_key()
    zone = data.get("time_zone")
    if zone is not None and zone not in time_zones():
        raise _domain(FunnelError("Please use an IANA time zone name.", "timezone"))
    meta = subscribers.SignupMeta(
        ip=request.remote_addr, user_agent=f"API key {key.name}"[:500] if key else None,
        page=data.get("source") or (f"API key {key.name}" if key else None),
        referrer=None, utm={k: v for k, v in (data.get("utm") or {}).items() if v},
    )
    try:
        row = intake.intake_row(
            email=data["email"], first_name=data.get("first_name"),
            timezone=zone or runtime.rt().settings.default_timezone, meta=meta,
            now=runtime.now(), front=IntakeVia.API)
    except FunnelError as exc:
        raise _domain(exc) from exc
    # The landing page's one INSERT, nothing looked up: the same answer, in the
    # same time, whoever the address belongs to, suppressed or not. The worker
    # takes it in (intake.take_intake) and queues the confirmation.
    # The key's lookup may hold a write (its last use); on SQLite the intake's own
    # connection would wait for it, so the request's transaction ends first.
    runtime.session().commit()
    intake.record_intake(runtime.rt().intake(), row)
    runtime.rt().wake.set()  # the embedded worker takes it in at once
    return jsonify(status="accepted", message="If the address can be used, a confirmation "
                   "email is on its way; nothing else is sent until it is confirmed."), 202


@bp.post("/subscribers/import")
@needs("subscribers:import")
def import_subscribers() -> Response:
    data = body("Import")
    key = current_key()
    rows = [(i, {"email": item["email"], "first_name": item.get("first_name") or ""})
            for i, item in enumerate(data["subscribers"])]
    report = importer.import_rows(
        runtime.session(), rows, confirmed=bool(data.get("confirmed")), now=runtime.now(),
        settings=runtime.rt().settings,
        origin=f"API key {key.name if key else '?'}; consent: {data['consent_source']}",
    )
    return jsonify(received=report.rows, added=report.added,
                   already_listed=report.already_listed, repeated=report.duplicates,
                   refused=report.suppressed,
                   bad=[{"index": b.line, "problem": b.problem} for b in report.bad])


@bp.get("/subscribers/<public_id>")
@needs("subscribers:read")
def get_subscriber(public_id: str) -> Response:
    return jsonify(show(_find(public_id)))


@bp.patch("/subscribers/<public_id>")
@needs("subscribers:write")
def update_subscriber(public_id: str) -> Response:
    data = body("Update")
    sub = _find(public_id)
    s, now = runtime.session(), runtime.now()
    until: datetime | None = None
    if "paused_until" in data and data["paused_until"] is not None:
        if sub.status != lifecycle.CONFIRMED:
            raise Problem(409, "Only a confirmed subscriber can be paused.")
        raw = data["paused_until"]
        until = lifecycle.UNTIL_RESUMED if raw == "indefinite" else _when(raw, "paused_until")
        if until <= now:
            raise _domain(FunnelError("A pause has to end in the future.", "pause"))
    try:  # every tag checked before anything changes
        add_tags = tagging.parse_tags(data.get("add_tags") or [])
        remove_tags = tagging.parse_tags(data.get("remove_tags") or [])
        tag_reason = tagging.clean_reason(data.get("tag_reason"))
    except FunnelError as exc:
        raise _domain(exc) from exc
    if set(add_tags) & set(remove_tags):
        raise _domain(FunnelError("A tag cannot be both added and removed.", "add_tags"))
    topics: dict[str, bool] = data.get("topics") or {}
    if topics and sub.status != lifecycle.CONFIRMED:
        raise Problem(409, "Only a confirmed subscriber has topics to change.")
    if "first_name" in data or "time_zone" in data:
        try:
            subscribers.update_profile(
                s, sub, first_name=data.get("first_name", sub.first_name),
                tz=data.get("time_zone", sub.timezone), now=now)
        except FunnelError as exc:
            s.rollback()
            raise _domain(exc) from exc
    if "paused_until" in data:
        if until is None:
            subscribers.resume(s, sub, now)
        else:
            subscribers.pause(s, sub, until, now)
    key = current_key()
    meta = subscribers.SignupMeta(ip=request.remote_addr,
                                  user_agent=f"API key {key.name}"[:500] if key else None)
    # Plan first: turning both off then ends with the newsletter, whose set_topic
    # sees the plan already off and unsubscribes, exactly as the preference page does.
    for topic in (subscribers.PLAN, subscribers.NEWSLETTER):
        if topic in topics and sub.status == lifecycle.CONFIRMED:
            subscribers.set_topic(s, sub, topic, topics[topic], now=now, meta=meta)
    if add_tags or remove_tags:
        for tag in add_tags:
            tagging.add_tag(s, sub.id, tag, now=now, source=TagSource.API,
                            reason=tag_reason or (f"API key {key.name}"[:200] if key else None))
        for tag in remove_tags:
            tagging.remove_tag(s, sub.id, tag)
        s.commit()
    return jsonify(show(sub))


@bp.post("/subscribers/<public_id>/unsubscribe")
@needs("subscribers:write")
def unsubscribe(public_id: str) -> Response:
    sub = _find(public_id)
    key = current_key()
    subscribers.unsubscribe(runtime.session(), sub, now=runtime.now(),
                         reason=f"unsubscribed through the API (key {key.name if key else '?'})")
    return jsonify(show(sub))


@bp.delete("/subscribers/<public_id>")
@needs("subscribers:erase")
def erase(public_id: str) -> tuple[str, int]:
    privacy.erase(runtime.session(), _find(public_id), runtime.now())
    return "", 204


# -- figures and the document ---------------------------------------------------------

@bp.get("/stats")
@needs("stats:read")
def stats() -> Response:
    s, now = runtime.session(), runtime.now()
    # The dashboard's kept figures: no count over the whole list per request.
    by_status = {status: 0 for status in lifecycle.STATUSES}
    by_status.update(figures.status_counts(s))
    by_status["total"] = sum(by_status.values())
    people = figures.last_days(s, 30, now.date())
    return jsonify(subscribers=by_status, last_30_days={
        "signups": people.get("signup", 0), "confirmations": people.get("confirm", 0),
        "unsubscribes": people.get("withdraw", 0), "imported": people.get("import", 0)})


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(spec.document(request.script_root + (bp.url_prefix or "")))
