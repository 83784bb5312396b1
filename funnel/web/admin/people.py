"""The admin's list of people: the subscribers, one subscriber's page (their emails,
the next one due), unsubscribing or erasing them by hand, the suppression list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select, tuple_

from funnel import runtime
from funnel.control import failures
from funnel.core import lifecycle, timezones
from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.states import SETTLED, UNSETTLED, DeliveryKind
from funnel.importing import export
from funnel.models import Subscriber, Suppression
from funnel.reporting import stats
from funnel.subscribers import actions as cases
from funnel.subscribers import privacy, queries
from funnel.web.admin import tags as admin_tags
from funnel.web.admin.auth import current_admin
from funnel.web.admin.dashboard import _csv_response, _own_hosts, _sequence_steps, bp

PER_PAGE = 50


def _list_filters() -> tuple[str, str | None]:
    q = (request.args.get("q") or "").strip()[:254]
    status = request.args.get("status") or None
    return q, status if status in lifecycle.STATUSES else None


@bp.get("/subscribers")
def subscribers():
    """The list, newest first, a page at a time.

    Pages are keyed by the subscriber they start after (``after``, older) or before
    (``before``, newer), never by an offset: the thousandth page reads 50 rows from
    the index like the first. The totals come from the tallies, or for a search
    from its own count, never from counting the whole list.
    """
    q, status = _list_filters()
    s = runtime.session()
    counts = stats.status_counts(s)
    newest_first = (Subscriber.created_at.desc(), Subscriber.id.desc())
    key = tuple_(Subscriber.created_at, Subscriber.id)
    stmt = queries.subscriber_search(select(Subscriber), search=q, status=status)
    cursor = _cursor(s, request.args.get("after") or request.args.get("before"))
    total: int | None = None
    if not q:
        total = counts.get(status, 0) if status else sum(counts.values())
    elif cursor is None and not request.args.get("last"):
        # A search's first page: its rows and its count from one pass over the
        # trigram index (the index scan is most of the cost, so not twice).
        found = s.execute(stmt.add_columns(func.count().over())
                          .order_by(*newest_first).limit(PER_PAGE + 1)).all()
        total = found[0][1] if found else 0
        return _list_page(q, status, counts, total, [r[0] for r in found], newer=False)
    if total is None:
        total = s.scalar(queries.subscriber_search(
            select(func.count()).select_from(Subscriber), search=q, status=status)) or 0
    if request.args.get("last"):
        # The oldest page: the last rows, read from the other end of the index.
        rows = list(reversed(s.scalars(
            stmt.order_by(Subscriber.created_at, Subscriber.id).limit(PER_PAGE)).all()))
        newer, older = total > len(rows), False
    elif cursor is not None and request.args.get("before"):
        got = s.scalars(stmt.where(key > cursor).order_by(Subscriber.created_at, Subscriber.id)
                        .limit(PER_PAGE + 1)).all()
        newer, older = len(got) > PER_PAGE, True
        rows = list(reversed(got[:PER_PAGE]))
    else:
        if cursor is not None:
            stmt = stmt.where(key < cursor)
        got = s.scalars(stmt.order_by(*newest_first).limit(PER_PAGE + 1)).all()
        return _list_page(q, status, counts, total, list(got), newer=cursor is not None)
    return render_template(
        "admin/subscribers.html", rows=rows, q=q, status=status, statuses=lifecycle.STATUSES,
        total=total, newer=newer, older=older, status_counts=counts,
        source_of=lambda sub: stats.source_label(sub.utm_source, sub.referrer, _own_hosts()),
    )


def _list_page(q: str, status: str | None, counts: dict[str, int], total: int,
               got: list[Subscriber], *, newer: bool):
    """A page read newest first: ``got`` holds one row more than the page when older ones exist."""
    return render_template(
        "admin/subscribers.html", rows=got[:PER_PAGE], q=q, status=status,
        statuses=lifecycle.STATUSES, total=total, newer=newer, older=len(got) > PER_PAGE,
        status_counts=counts,
        source_of=lambda sub: stats.source_label(sub.utm_source, sub.referrer, _own_hosts()),
    )


def _cursor(s, public_id: str | None) -> tuple[datetime, int] | None:
    """(created_at, id) of the subscriber a page starts from; None if gone or not given."""
    if not public_id:
        return None
    found = s.execute(select(Subscriber.created_at, Subscriber.id)
                      .where(Subscriber.public_id == public_id[:64])).first()
    return (found[0], found[1]) if found else None


@bp.get("/subscribers.csv")
def subscribers_csv():
    q, status = _list_filters()
    sessions = runtime.rt().sessions
    today = runtime.now().date().isoformat()

    def rows() -> Iterator[list[str]]:
        # Its own session: the response streams after the request's session is closed.
        with sessions() as s:
            yield from export.export_rows(s, search=q, status=status)

    return _csv_response(rows(), f"subscribers-{today}.csv")


def _subscriber(public_id: str) -> Subscriber:
    sub = cases.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        abort(404)
    return sub


@bp.get("/subscribers/<public_id>")
def subscriber(public_id: str):
    s = runtime.session()
    sub = _subscriber(public_id)
    steps, _problem = _sequence_steps()
    subjects = dict(steps)
    deliveries = sorted(sub.deliveries, key=lambda d: d.id)
    events = {d.id: sorted(d.events, key=lambda e: (e.at, e.id)) for d in deliveries}
    now = runtime.now()
    paused_until = sub.paused_until
    paused = paused_until is not None and paused_until > now
    next_email, next_none = _next_email(sub, subjects, now)
    return render_template(
        "admin/subscriber.html", sub=sub, consents=privacy.consent_history(s, sub),
        deliveries=deliveries, events=events, subjects=subjects,
        next_email=next_email, next_email_none=next_none, paused=paused,
        paused_until_text=(_local_text(paused_until, sub.timezone) + " their time"
                           if paused_until is not None and paused and paused_until.year < 9000
                           else "they are resumed"),
        time_zone_groups=timezones.grouped(sub.timezone),
        retryable=sum(d.state == failures.FAILED for d in deliveries)
        if sub.status == lifecycle.CONFIRMED else 0,
        can_unsubscribe=sub.status in (lifecycle.PENDING, lifecycle.CONFIRMED),
        source=stats.source_label(sub.utm_source, sub.referrer, _own_hosts()),
        **admin_tags.subscriber_panel(s, sub),
    )


def _local_text(when: datetime, tz_name: str) -> str:
    from funnel.core.schedule import zone

    local = when.astimezone(zone(tz_name, runtime.rt().settings.default_timezone))
    return f"{local:%a %d %b %Y, %H:%M}"


def _next_email(sub: Subscriber, subjects: dict[str, str], now: datetime
                ) -> tuple[dict[str, str] | None, str]:
    """The next email of the plan and when it goes out, in their zone and in UTC."""
    if sub.status != lifecycle.CONFIRMED:
        return None, f"None: they are {sub.status}."
    from funnel.core.schedule import next_step, zone
    from funnel.core.sequence import load_sequence
    from funnel.drip import planner
    from funnel.drip.batches import view
    from funnel.runtime import planner_rules

    try:
        sequence = load_sequence(runtime.rt().settings.emails_dir)
    except (OSError, ValueError):
        return None, "Unknown: the email files could not be read."
    sub_view, deliveries = view(sub)
    decision = planner.plan(sub_view, deliveries, sequence.steps, now,
                            planner_rules(runtime.rt().settings, runtime.rt().transport))
    if isinstance(decision, planner.Hold):
        return None, f"None for now: {decision.reason}."
    if isinstance(decision, planner.Send):
        slug, due = decision.step.slug, now
    elif isinstance(decision, planner.WaitUntil):
        in_flight = [d.step_slug for d in deliveries
                     if d.kind == DeliveryKind.DRIP and d.state in UNSETTLED]
        done = [d.step_slug for d in sorted(deliveries, key=lambda d: d.sent_at or d.created_at)
                if d.kind == DeliveryKind.DRIP and d.state in SETTLED]
        step = next_step(sequence.steps, done)
        slug = in_flight[0] if in_flight else (step.slug if step else "")
        due = decision.at
    else:
        return None, "The worker is settling an earlier send first."
    tz = zone(sub.timezone, runtime.rt().settings.default_timezone)
    return {"subject": subjects.get(slug, slug),
            "local": _local_text(due, sub.timezone), "zone": str(tz.key),
            "utc": f"{due.astimezone(UTC):%a %d %b %Y, %H:%M}"}, ""


@bp.post("/subscribers/<public_id>/unsubscribe")
def unsubscribe(public_id: str):
    sub = _subscriber(public_id)
    admin = current_admin()
    assert admin is not None
    done = cases.unsubscribe(runtime.session(), sub, now=runtime.now(),
                                reason=f"unsubscribed by admin {admin.email}"[:500])
    flash("Unsubscribed: no more emails will be sent to this address." if done
          else "This subscriber was not receiving emails; nothing changed.")
    return redirect(url_for("admin.subscriber", public_id=public_id), code=303)


@bp.post("/subscribers/<public_id>/erase")
def erase(public_id: str):
    sub = _subscriber(public_id)
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm: erasing cannot be undone.")
        return redirect(url_for("admin.subscriber", public_id=public_id), code=303)
    privacy.erase(runtime.session(), sub, runtime.now())
    # The address is not repeated here: flashed messages travel in the session cookie.
    flash("Erased. Everything about that subscriber was deleted; only a salted hash of the "
          "address remains on the suppression list.")
    return redirect(url_for("admin.subscribers"), code=303)


@bp.get("/suppression")
def suppression():
    s = runtime.session()
    by_reason, latest = queries.suppression_summary(s)
    total = sum(n for _r, n in by_reason)
    return render_template("admin/suppression.html", by_reason=by_reason, latest=latest,
                           total=total, result=None, checked=None)


@bp.post("/suppression")
def suppression_action():
    """Check whether an address is suppressed, or suppress it (never to be mailed again)."""
    s = runtime.session()
    action = request.form.get("action")
    try:
        address = normalise_email(request.form.get("email") or "")
    except FunnelError as exc:
        flash(str(exc))
        return redirect(url_for("admin.suppression"), code=303)
    h = privacy.suppression_hash(s, address)
    entry = queries.suppression_entry(s, h)
    if action == "add":
        if entry is None:
            s.add(Suppression(email_hash=h, reason="added by admin", created_at=runtime.now()))
            s.commit()
        sub = queries.subscriber_by_email(s, address)
        if sub is not None:
            cases.unsubscribe(s, sub, now=runtime.now(), reason="suppressed by admin")
        flash("Suppressed: this address will never be mailed or added again." if entry is None
              else "That address was already on the suppression list.")
        return redirect(url_for("admin.suppression"), code=303)
    result = (f"On the suppression list ({entry.reason}, since {entry.created_at:%d %b %Y})."
              if entry is not None else "Not on the suppression list.")
    s.rollback()  # a first-ever check may have created the salt: keep it only with data
    by_reason, latest = queries.suppression_summary(s)
    return render_template("admin/suppression.html", by_reason=by_reason, latest=latest,
                           total=sum(n for _r, n in by_reason), result=result, checked=address)
