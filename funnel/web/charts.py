"""The dashboard's charts as inline SVG, drawn on the server.

No JavaScript and nothing fetched from elsewhere. Each chart is an image with a
title and a one-sentence description for screen readers, every bar carries a
tooltip, and values are printed as text so colour is never the only cue. The
dashboard also shows the same numbers as tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from funnel.stats import DayRow, FunnelCounts, StepRow

INK = "#1b1f23"
MUTED = "#4a535c"
GRID = "#d9d6cf"
FONT = 'font-family="system-ui,sans-serif"'
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
}
ENGAGEMENT = ("delivered", "opened", "clicked", "unsubscribed", "bounced")


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _day_label(d: date) -> str:
    return f"{d.day} {d:%b}"


def _nice_max(value: int) -> int:
    """A round number at or above ``value`` for the top of an axis."""
    if value <= 5:
        return 5
    magnitude = 10 ** int(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def _svg(chart_id: str, width: int, height: int, title: str, desc: str, body: list[str]
         ) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" '
        f'viewBox="0 0 {width} {height}" width="100%" role="img" '
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


def signups_per_day(days: Sequence[DayRow]) -> Markup:
    """Columns of sign-ups and confirmations for each day of the period."""
    n = max(len(days), 1)
    slot = 24 if n <= 45 else max(4, 1080 // n)
    left, top, bottom, right = 44, 28, 36, 12
    plot_h = 180
    width = left + n * slot + right
    height = top + plot_h + bottom
    top_value = _nice_max(max((max(d.signups, d.confirmations) for d in days), default=0))
    body: list[str] = []
    for tick in (0, top_value // 2, top_value):
        y = top + plot_h - plot_h * tick / top_value
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(left - 6, y + 4, f"{tick:,}", anchor="end", fill=MUTED))
    bar_w = max(1.0, (slot - 4) / 2)
    every = max(1, math.ceil(n / 10))
    for i, d in enumerate(days):
        x = left + i * slot + 2
        for j, (key, value) in enumerate((("signups", d.signups),
                                          ("confirmations", d.confirmations))):
            h = plot_h * value / top_value
            noun = "sign-up" if key == "signups" else "confirmation"
            tip = f"{_day_label(d.day)}: {value:,} {noun}{'' if value == 1 else 's'}"
            body.append(_rect(x + j * bar_w, top + plot_h - h, bar_w, h, SERIES[key], tip))
        if i % every == 0:
            body.append(_text(x + bar_w, top + plot_h + 16, _day_label(d.day), anchor="middle",
                              fill=MUTED))
    body.append(_rect(left, 6, 12, 12, SERIES["signups"], "Sign-ups"))
    body.append(_text(left + 16, 16, "Sign-ups"))
    body.append(_rect(left + 90, 6, 12, 12, SERIES["confirmations"], "Confirmations"))
    body.append(_text(left + 106, 16, "Confirmations"))
    total_s = sum(d.signups for d in days)
    total_c = sum(d.confirmations for d in days)
    busiest = max(days, key=lambda d: d.signups, default=None)
    desc = f"{total_s:,} sign-ups and {total_c:,} confirmations over {len(days)} days."
    if busiest is not None and busiest.signups:
        desc += f" The busiest day was {_day_label(busiest.day)} with {busiest.signups:,} sign-ups."
    return _svg("chart-daily", width, height, "Sign-ups and confirmations per day", desc, body)


def funnel(counts: FunnelCounts) -> Markup:
    """One horizontal bar per stage, with its count and the conversion from the stage before."""
    stages = counts.stages
    label_w, bar_max, value_w = 170, 460, 190
    row_h, top = 44, 8
    width = label_w + bar_max + value_w
    height = top + row_h * len(stages)
    biggest = max((c for _k, _l, c, _r in stages), default=0) or 1
    body: list[str] = []
    parts = []
    for i, (_key, label, count, conversion) in enumerate(stages):
        y = top + i * row_h
        w = bar_max * count / biggest
        body.append(_text(label_w - 10, y + 23, label, anchor="end", weight="600"))
        tip = f"{label}: {count:,}" + (f" ({percent(conversion)} of the stage before)"
                                       if conversion is not None else "")
        body.append(_rect(label_w, y + 6, w, 26, SERIES["funnel"], tip))
        value = f"{count:,}" + (f"  ({percent(conversion)})" if conversion is not None else "")
        body.append(_text(label_w + w + 8, y + 23, value, weight="600"))
        parts.append(f"{label} {count:,}" + (f" ({percent(conversion)} of the stage before)"
                                             if conversion is not None else ""))
    return _svg("chart-funnel", width, height, "The funnel, from visit to confirmation",
                "; ".join(parts) + ".", body)


def engagement(steps: Sequence[StepRow]) -> Markup:
    """For each email step, the share of sent emails delivered, opened, clicked,
    unsubscribed from and bounced."""
    label_w, bar_max, value_w = 250, 400, 60
    bar_h, gap, legend_h = 11, 14, 30
    group_h = bar_h * len(ENGAGEMENT) + gap
    width = label_w + bar_max + value_w
    height = legend_h + max(len(steps), 1) * group_h
    body: list[str] = []
    x = label_w
    for key in ENGAGEMENT:
        body.append(_rect(x, 6, 12, 12, SERIES[key], key.capitalize()))
        body.append(_text(x + 16, 16, key.capitalize()))
        x += 16 + 8 * len(key) + 18
    for tick in (0, 0.5, 1.0):
        gx = label_w + bar_max * tick
        body.append(f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{legend_h - 4}" y2="{height}" '
                    f'stroke="{GRID}"/>')
    parts = []
    for i, step in enumerate(steps):
        y = legend_h + i * group_h
        name = step.subject or step.slug
        short = name if len(name) <= 32 else name[:31].rstrip() + "…"
        body.append(_text(label_w - 10, y + group_h / 2, short, anchor="end", weight="600"))
        body.append(_text(label_w - 10, y + group_h / 2 + 14, f"{step.sent:,} sent",
                          anchor="end", fill=MUTED))
        for j, key in enumerate(ENGAGEMENT):
            r = step.rate(key)
            w = bar_max * (r or 0)
            by = y + j * bar_h
            tip = f"{name}: {step.count(key):,} of {step.sent:,} {key} ({percent(r)})"
            body.append(_rect(label_w, by, w, bar_h - 2, SERIES[key], tip))
            body.append(_text(label_w + w + 4, by + bar_h - 3, percent(r), fill=INK, size=10))
        if step.sent:
            parts.append(f"{name}: {percent(step.rate('opened'))} opened, "
                         f"{percent(step.rate('clicked'))} clicked")
    desc = ("Share of each email's sends that were delivered, opened, clicked, unsubscribed "
            "from and bounced. " + ("; ".join(parts) + "." if parts else "No emails were sent."))
    return _svg("chart-steps", width, height, "Engagement per email", desc, body)
