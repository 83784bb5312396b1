"""The dashboard's charts as inline SVG, drawn on the server. No JavaScript.

Each chart is drawn for a phone first: a viewBox about 360 units wide, so text
set at 12 units is read at about 12 px on a 375 px screen, and the stylesheet
caps the width on a desktop so it does not grow into a poster. Labels sit above
their bars instead of beside them, legends wrap onto as many rows as they need
(never cut off), and axes tick only at whole numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from funnel.reporting.insights import GrowthDay, PathFunnel, Reach
from funnel.reporting.stats import DayRow, StepRow

INK = "#1b1f23"
MUTED = "#4a535c"
GRID = "#d9d6cf"
FONT = 'font-family="system-ui,sans-serif"'
WIDTH = 360
CHAR_W = 7.0  # a generous average width of a 12-unit character, for layout
# Dark enough for text-like contrast against white (WCAG non-text contrast 3:1).
SERIES = {
    "signups": "#d9534f",
    "confirmations": "#7a1a14",
    "funnel": "#b3261e",
    "delivered": "#4a535c",
    "opened": "#1a56db",
    "clicked": "#1e6b34",
    "unsubscribed": "#9a5b00",
    "bounced": "#b3261e",
    "growth": "#1e6b34",
    "loss": "#b3261e",
    "reach": "#1a56db",
}
ENGAGEMENT = ("delivered", "opened", "clicked", "unsubscribed", "bounced")


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _day_label(d: date) -> str:
    return f"{d.day} {d:%b}"


def integer_ticks(top: int, most: int = 5) -> list[int]:
    """Whole-number ticks from 0 to at least ``top``, at most ``most`` + 1 of them,
    evenly spaced by 1, 2 or 5 times a power of ten. Never 0, 2, 5."""
    top = max(math.ceil(top), 1)
    raw = top / most
    magnitude = 10 ** max(math.floor(math.log10(raw)) if raw >= 1 else 0, 0)
    step = max(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 1)
    last = math.ceil(top / step) * step
    return list(range(0, last + 1, step))


def _svg(chart_id: str, width: float, height: float, title: str, desc: str, body: list[str]
         ) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" {FONT} font-size="12">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>'
        + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK,
          weight: str = "normal", size: int | None = None) -> str:
    size_attr = f' font-size="{size}"' if size else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{size_attr}>{escape(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str) -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{fill}"><title>{escape(tip)}</title></rect>')


def _short(text: str, room: float) -> str:
    most = max(int(room / CHAR_W), 4)
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def legend(items: Sequence[tuple[str, str]], width: float = WIDTH, x0: float = 4,
           y0: float = 4) -> tuple[list[str], float]:
    """Swatch-and-label pairs that wrap onto new rows; returns (parts, height used)."""
    body: list[str] = []
    x, y = x0, y0
    for label, colour in items:
        need = 16 + CHAR_W * len(label) + 12
        if x > x0 and x + need > width:
            x, y = x0, y + 18
        body.append(_rect(x, y, 12, 12, colour, label))
        body.append(_text(x + 16, y + 10, label))
        x += need
    return body, y + 18 - y0


def _column_chart(chart_id: str, title: str, desc: str, days: Sequence[date],
                  series: Sequence[tuple[str, str, Sequence[int]]], *, signed: bool = False
                  ) -> Markup:
    """Columns per day for one or more series; ``signed`` draws below a zero line too."""
    n = max(len(days), 1)
    left, right, plot_h = 34, 6, 150
    leg, leg_h = legend([(label, colour) for label, colour, _v in series])
    top = leg_h + 10
    slot = (WIDTH - left - right) / n
    high = max((max(v, default=0) for _l, _c, v in series), default=0)
    low = min((min(v, default=0) for _l, _c, v in series), default=0) if signed else 0
    up = integer_ticks(max(high, 1))
    down = [-t for t in integer_ticks(-low)][1:] if low < 0 else []
    span_top, span_bottom = up[-1], (down[-1] if down else 0)
    scale = plot_h / (span_top - span_bottom)
    zero_y = top + span_top * scale
    body = list(leg)
    for tick in sorted(set(up + down)):
        y = zero_y - tick * scale
        body.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(left - 4, y + 4, f"{tick:,}", anchor="end", fill=MUTED))
    k = len(series)
    bar_w = max(0.8, (slot * 0.8) / k)
    every = max(1, math.ceil(n / 5))
    for i, d in enumerate(days):
        x = left + i * slot + slot * 0.1
        for j, (label, colour, values) in enumerate(series):
            value = values[i]
            h = abs(value) * scale
            y = zero_y - h if value >= 0 else zero_y
            body.append(_rect(x + j * bar_w, y, bar_w, h, colour,
                              f"{_day_label(d)}: {value:,} {label.lower()}"))
        if i % every == 0:
            body.append(_text(left + i * slot + slot / 2, top + plot_h + 16, _day_label(d),
                              anchor="middle", fill=MUTED))
    return _svg(chart_id, WIDTH, top + plot_h + 24, title, desc, body)


def signups_per_day(days: Sequence[DayRow]) -> Markup:
    """Columns of sign-ups and confirmations for each day of the period."""
    total_s = sum(d.signups for d in days)
    total_c = sum(d.confirmations for d in days)
    busiest = max(days, key=lambda d: d.signups, default=None)
    desc = f"{total_s:,} sign-ups and {total_c:,} confirmations over {len(days)} days."
    if busiest is not None and busiest.signups:
        desc += f" The busiest day was {_day_label(busiest.day)} with {busiest.signups:,} sign-ups."
    return _column_chart(
        "chart-daily", "Sign-ups and confirmations per day", desc, [d.day for d in days],
        [("Sign-ups", SERIES["signups"], [d.signups for d in days]),
         ("Confirmations", SERIES["confirmations"], [d.confirmations for d in days])])


def growth(days: Sequence[GrowthDay]) -> Markup:
    """Net list growth per day: confirmations minus people lost, above or below zero."""
    net = [d.net for d in days]
    desc = (f"Net growth over {len(days)} days: {sum(net):+,} "
            f"({sum(d.confirmations for d in days):,} confirmations, "
            f"{sum(d.lost for d in days):,} unsubscribed, bounced or complained).")
    return _column_chart("chart-growth", "Net list growth per day", desc,
                         [d.day for d in days],
                         [("Net growth", SERIES["growth"], net)], signed=True)


def _hbars(chart_id: str, title: str, rows: Sequence[tuple[str, int, str]], colour: str,
           desc: str) -> Markup:
    """A label above each horizontal bar, the value at its end; bars share one scale."""
    row_h, bar_h, value_room = 40, 16, 110
    biggest = max((v for _l, v, _n in rows), default=0) or 1
    body: list[str] = []
    for i, (label, value, note) in enumerate(rows):
        y = 4 + i * row_h
        body.append(_text(4, y + 12, _short(label, WIDTH - 8), weight="600"))
        w = (WIDTH - 8 - value_room) * value / biggest
        body.append(_rect(4, y + 18, w, bar_h, colour, f"{label}: {value:,}{note}"))
        body.append(_text(4 + w + 6, y + 31, f"{value:,}{note}"))
    return _svg(chart_id, WIDTH, 8 + row_h * max(len(rows), 1), title, desc, body)


def path_funnel(f: PathFunnel) -> Markup:
    """One funnel (from the article, or direct): each bar no longer than the one before."""
    rows = [(s.label, s.count, "" if s.conversion is None else f" ({percent(s.conversion)})")
            for s in f.stages]
    desc = "; ".join(f"{s.label} {s.count:,}" + (
        f" ({percent(s.conversion)} of the stage before)" if s.conversion is not None else "")
        for s in f.stages) + "."
    return _hbars(f"chart-funnel-{f.path}", f"The funnel: {f.title.lower()}", rows,
                  SERIES["funnel"], desc)


def reach(rows: Sequence[Reach]) -> Markup:
    desc = "; ".join(f"{r.subject or r.slug}: {r.people:,}" for r in rows) or "No steps."
    return _hbars("chart-reach", "People who reached each step of the plan",
                  [(r.subject or r.slug, r.people, "") for r in rows], SERIES["reach"], desc)


def engagement(steps: Sequence[StepRow]) -> Markup:
    """For each email step, the share of sent emails delivered, opened, clicked,
    unsubscribed from and bounced."""
    bar_h, value_room = 11, 52
    leg, leg_h = legend([(k.capitalize(), SERIES[k]) for k in ENGAGEMENT])
    group_h = 18 + bar_h * len(ENGAGEMENT) + 12
    top = leg_h + 8
    bar_max = WIDTH - 8 - value_room
    body = list(leg)
    parts = []
    for i, step in enumerate(steps):
        y = top + i * group_h
        name = step.subject or step.slug
        body.append(_text(4, y + 12, _short(f"{name} · {step.sent:,} sent", WIDTH - 8),
                          weight="600"))
        for j, key in enumerate(ENGAGEMENT):
            r = step.rate(key)
            w = bar_max * (r or 0)
            by = y + 18 + j * bar_h
            tip = f"{name}: {step.count(key):,} of {step.sent:,} {key} ({percent(r)})"
            body.append(_rect(4, by, w, bar_h - 2, SERIES[key], tip))
            body.append(_text(4 + w + 4, by + bar_h - 2, percent(r), size=10))
        if step.sent:
            parts.append(f"{name}: {percent(step.rate('opened'))} opened, "
                         f"{percent(step.rate('clicked'))} clicked")
    desc = ("Share of each email's sends that were delivered, opened, clicked, unsubscribed "
            "from and bounced. " + ("; ".join(parts) + "." if parts else "No emails were sent."))
    return _svg("chart-steps", WIDTH, top + max(len(steps), 1) * group_h, "Engagement per email",
                desc, body)
