"""The marketer's dashboard: the funnel at a glance, the list, the suppression list.

Every page and action here is behind the admin login (``before_request``), every
POST carries a CSRF token (the app-wide CSRFProtect), and responses are never
cached, since they hold personal data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, flash, render_template, request

from funnel import runtime
from funnel.control import failures, mail_health
from funnel.core import lifecycle
from funnel.importing import csv_files
from funnel.reporting import insights, periods, stats
from funnel.web.admin import charts
from funnel.web.admin.auth import admin_only

bp = Blueprint("admin", __name__, url_prefix="/admin")
admin_only(bp)

DEFAULT_DAYS = 30
PRESETS = (7, 30, 90)
MAX_DAYS = 400
CSV_REPORTS = ("daily", "funnel", "steps", "sources")


# -- the period ------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return periods.utc_day_bounds(self.first, self.last)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def args(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


EARLIEST = date(2000, 1, 1)


class BadPeriod(ValueError):
    """A period the dashboard cannot show; the message says what it accepts."""


def _default_period() -> Period:
    today = runtime.now().astimezone(UTC).date()
    return Period(today - timedelta(days=DEFAULT_DAYS - 1), today)


def _period() -> Period:
    """The period asked for in the query string, else the last 30 days (UTC).
    Raises BadPeriod for dates that are malformed or outside what we can count."""
    today = runtime.now().astimezone(UTC).date()
    if request.args.get("days", "").isdigit():
        days = min(max(int(request.args["days"]), 1), MAX_DAYS)
        return Period(today - timedelta(days=days - 1), today)
    raw_from, raw_to = request.args.get("from"), request.args.get("to")
    if not (raw_from or raw_to):
        return _default_period()
    latest = today + timedelta(days=366)
    accepted = (f"Dates are written like 2026-12-31, between {EARLIEST.isoformat()} and "
                f"{latest.isoformat()}; showing the last {DEFAULT_DAYS} days instead.")
    try:
        first = date.fromisoformat(raw_from or "")
        last = date.fromisoformat(raw_to or "") if raw_to else today
    except ValueError as exc:
        raise BadPeriod(accepted) from exc
    if first > last:
        first, last = last, first
    # Checked before any arithmetic: 9999-12-31 has no next day to end the period on.
    if first < EARLIEST or last > latest:
        raise BadPeriod(accepted)
    if (last - first).days >= MAX_DAYS:
        flash(f"That is more than {MAX_DAYS} days; showing the last {MAX_DAYS}.")
        first = last - timedelta(days=MAX_DAYS - 1)
    return Period(first, last)


def _sequence_steps() -> tuple[list[tuple[str, str]], str | None]:
    """The sequence as (slug, subject), and a problem to show if it cannot be read.

    Parsed again only when a sequence file changes (as the worker does): once the
    figures came from kept cells, parsing the files was a fifth of a load's CPU."""
    from flask import current_app

    from funnel.core.sequence import SequenceFiles

    emails_dir = runtime.rt().settings.emails_dir
    files = current_app.extensions.get("funnel_sequence_files")
    if not isinstance(files, SequenceFiles) or files.emails_dir != emails_dir:
        files = current_app.extensions["funnel_sequence_files"] = SequenceFiles(emails_dir)
    try:
        seq = files()
    except (OSError, ValueError) as exc:  # a broken email file must not take the dashboard down
        return [], f"The email files could not be read ({exc}); steps are listed by name."
    return [(s.slug, s.subject) for s in seq], None


def sequence_subjects() -> dict[str, str]:
    return dict(_sequence_steps()[0])


def broken_steps() -> dict[str, list[str]]:
    """Emails whose files have check errors, by slug (a broken layout breaks them all).

    Checking renders every email (about 200 ms of CPU, a tenth of the dashboard at
    a million subscribers), so the check's answer is kept until any file under the
    emails folder is added, removed or changed (funnel.mail.check_kept): an edit
    shows at the next load."""
    from flask import current_app

    from funnel.core.sequence import EmailFileError, read_email_file
    from funnel.mail.check import ERROR, email_files
    from funnel.mail.check_kept import kept_check

    settings = runtime.rt().settings
    errors = [p for p in kept_check(current_app._get_current_object())  # type: ignore[attr-defined]
              if p.level == ERROR]
    if not errors:
        return {}
    slugs: dict[Path, str] = {}
    for path in email_files(settings.emails_dir):
        try:
            slugs[path] = read_email_file(path).slug
        except EmailFileError:
            slugs[path] = path.stem
    out: dict[str, list[str]] = {}
    for problem in errors:
        if problem.path.parent.name == "layout":
            for slug in slugs.values():
                out.setdefault(slug, []).append(problem.message)
        elif problem.path in slugs:
            out.setdefault(slugs[problem.path], []).append(problem.message)
    return out


def _own_hosts() -> list[str]:
    hosts = [request.host.split(":")[0]]
    base = urlsplit(runtime.rt().settings.base_url).hostname
    if base:
        hosts.append(base)
    return hosts


def _dimension() -> str:
    by = request.args.get("by", "source")
    return by if by in stats.DIMENSIONS else "source"


# -- the dashboard -----------------------------------------------------------------

@bp.get("/")
def dashboard():
    status = 200
    try:
        period = _period()
    except BadPeriod as exc:
        flash(str(exc))
        period, status = _default_period(), 400
    start, end = period.bounds
    steps, steps_problem = _sequence_steps()
    dimension, own_hosts = _dimension(), _own_hosts()
    subjects = dict(steps)
    # Read in turn in the page's one transaction: from the kept figures each part takes
    # milliseconds, and reading them at once on their own connections was slower (README).
    s = runtime.session()
    got = {name: call(s) for name, call in {
        "problems": lambda s: failures.by_step(s, subjects),
        "origins": lambda s: _sources_and_funnels(s, start, end, dimension, own_hosts),
        "steps": lambda s: stats.per_step(s, start, end, steps=steps),
        "days": lambda s: stats.daily(s, start, end),
        "counts": lambda s: stats.funnel_counts(s, start, end),
        "clicks": lambda s: insights.clicks_per_link(s, start, end),
        "growth": lambda s: insights.growth(s, start, end),
        "small": lambda s: (insights.reach(s, steps), stats.status_counts(s),
                            failures.counts(s)),
    }.items()}
    problems, growth, days = got["problems"], got["growth"], got["days"]
    sources, funnels = got["origins"]
    reach, status_counts, failure_counts = got["small"]
    step_rows = got["steps"]
    return render_template(
        "admin/dashboard.html",
        mail_health=mail_health.read(s, bool(runtime.rt().settings.mail_fallback)),
        machine=mail_health.machine_counts(s, start, end),
        failures=problems, failure_counts=failure_counts if problems else None,
        broken=broken_steps() if problems else {}, subjects=subjects,
        funnels=funnels, funnel_charts=[charts.path_funnel(f) for f in funnels],
        growth=growth, chart_growth=charts.growth(growth), chart_reach=charts.reach(reach),
        clicks=got["clicks"],
        period=period, presets=PRESETS, counts=got["counts"], days=days, steps=step_rows,
        steps_problem=steps_problem, sources=sources, dimension=dimension,
        dimensions=stats.DIMENSIONS, status_counts=status_counts,
        statuses=lifecycle.STATUSES, percent=charts.percent,
        chart_daily=charts.signups_per_day(days),
        chart_steps=charts.engagement([r for r in step_rows if r.sent] or step_rows),
    ), status


def _sources_and_funnels(s, start: datetime, end: datetime, dimension: str,
                         own_hosts: list[str]) -> tuple[list[stats.SourceRow], tuple]:
    """Both from one read of the period's people and where they came from."""
    origins = stats.people_by_origin(s, start, end)
    return (stats.by_source(s, start, end, dimension=dimension, own_hosts=own_hosts,
                            origins=origins),
            insights.funnels(s, start, end, origins))


def _csv_response(rows: Iterable[list[str]], filename: str) -> Response:
    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        for row in rows:
            writer.writerow(row)
            if buf.tell() > 64 * 1024:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@bp.get("/stats.csv")
def stats_csv():
    """The dashboard's numbers as CSV: ?report=daily|funnel|steps|sources."""
    report = request.args.get("report", "daily")
    if report not in CSV_REPORTS:
        abort(404)
    try:
        period = _period()
    except BadPeriod:
        abort(400)
    start, end = period.bounds
    s = runtime.session()
    rows: list[list[str]]
    if report == "daily":
        rows = [["day", *stats.DAILY_COLUMNS]]
        rows += [[d.day.isoformat(), *(str(getattr(d, c)) for c in stats.DAILY_COLUMNS)]
                 for d in stats.daily(s, start, end)]
    elif report == "funnel":
        c = stats.funnel_counts(s, start, end)
        rows = [["stage", "count", "conversion_from_previous"]]
        rows += [[key, str(count), _fmt(conv)] for key, _label, count, conv in c.stages]
        rows += [[name, str(getattr(c, name)), ""] for name in (
            "imported", "unsubscribes", "sent", "delivered", "opened", "clicked", "bounced",
            "complained")]
    elif report == "steps":
        groups = list(stats.EVENT_GROUPS)
        rows = [["step", "subject", "sent", *groups, *(f"{g}_rate" for g in groups)]]
        for r in stats.per_step(s, start, end, steps=_sequence_steps()[0]):
            rows.append([r.slug, r.subject, str(r.sent), *(str(r.count(g)) for g in groups),
                         *(_fmt(r.rate(g)) for g in groups)])
    else:
        dimension = _dimension()
        rows = [[dimension, "article_visits", "landing_visits", "signups", "confirmations",
                 "signup_rate", "confirmation_rate"]]
        for r in stats.by_source(s, start, end, dimension=dimension, own_hosts=_own_hosts()):
            rows.append([csv_files.escape_cell(r.label), str(r.article_visits),
                         str(r.landing_visits), str(r.signups), str(r.confirmations),
                         _fmt(r.signup_rate), _fmt(r.confirmation_rate)])
    s.rollback()
    name = f"funnel-{report}-{period.first.isoformat()}-to-{period.last.isoformat()}.csv"
    return _csv_response(rows, name)


# -- the list ----------------------------------------------------------------------


# -- the suppression list -------------------------------------------------------------


