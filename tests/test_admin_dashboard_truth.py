"""A dashboard that tells the truth: two funnels, net growth, reach per step, clicks
per link, whole numbers on axes."""

from __future__ import annotations

import itertools
import re
from datetime import date

from funnel.reporting import insights, periods, stats
from funnel.web.admin import charts
from tests.test_stats import Builder, t

NOV = periods.utc_day_bounds(date(2026, 11, 1), date(2026, 11, 30))


def arrange(db):
    b = Builder(db)
    b.visits("article", t(11, 5, 9), 7)
    b.visits("landing", t(11, 5, 9, 5), 4, via="article")
    b.visits("landing", t(11, 5, 11), 9, via="direct")
    a = b.person("a@example.com", t(11, 5, 10), confirmed=t(11, 5, 10, 5), status="confirmed",
                 arrived_via="article")
    b.person("b@example.com", t(11, 5, 11), arrived_via="article")
    c = b.person("c@example.com", t(11, 5, 12), confirmed=t(11, 6, 8), status="confirmed",
                 arrived_via="direct")
    imp = b.person("imp@example.com", t(11, 5, 12), confirmed=t(11, 5, 12), status="confirmed",
                   action="import")
    imp.consents.pop()  # an import has no confirm record
    b.sent(a, "step-1", t(11, 5, 11), ("click", t(11, 5, 12)), ("click", t(11, 5, 13)))
    b.sent(c, "step-1", t(11, 6, 9), ("click", t(11, 6, 10)), ("bounce", t(11, 6, 11)))
    b.sent(a, "step-2", t(11, 7, 9))
    db.flush()
    a.deliveries[0].events[0].detail = "https://runstronger.example/stretch"
    a.deliveries[0].events[1].detail = "https://runstronger.example/stretch"
    c.deliveries[0].events[0].detail = "https://runstronger.example/plan"
    db.commit()
    return a, c


def test_no_stage_exceeds_the_one_before(db):
    arrange(db)
    article, direct = insights.funnels(db, *NOV)
    assert [s.count for s in article.stages] == [7, 4, 2, 1]
    assert [s.count for s in direct.stages] == [9, 1, 1]
    for f in (article, direct):
        counts = [s.count for s in f.stages]
        assert counts == sorted(counts, reverse=True)
        assert all(s.conversion is None or s.conversion <= 1 for s in f.stages)


def test_a_confirmation_counts_in_the_funnel_only_for_someone_who_signed_up(db):
    """By source counts every confirmation of the period; the funnels only those of
    people who came through the form, even when they signed up before the period."""
    b = Builder(db)
    b.person("october@example.com", t(10, 30, 9), confirmed=t(11, 2, 9), status="confirmed",
             arrived_via="article", utm_source="newsletter")
    imp = b.person("imp@example.com", t(11, 3, 9), confirmed=t(11, 3, 10), status="confirmed",
                   action="import", utm_source="newsletter")
    assert [c.action for c in imp.consents] == ["import", "confirm"]
    db.commit()
    article, direct = insights.funnels(db, *NOV)
    assert [s.count for s in article.stages][2:] == [0, 1]
    assert [s.count for s in direct.stages][1:] == [0, 0]
    (row,) = stats.by_source(db, *NOV)
    assert (row.label, row.signups, row.confirmations) == ("newsletter", 0, 2)


def test_net_growth_per_day(db):
    arrange(db)
    days = {d.day: d for d in insights.growth(db, *NOV)}
    assert days[date(2026, 11, 5)].net == 1  # a confirmed
    assert days[date(2026, 11, 5)].imported == 1  # shown apart, not growth
    assert days[date(2026, 11, 6)].confirmations == 1
    assert days[date(2026, 11, 6)].bounced == 1
    assert days[date(2026, 11, 6)].net == 0
    assert sum(d.net for d in days.values()) == 1


def test_reach_per_step_and_clicks_per_link(db):
    arrange(db)
    reach = insights.reach(db, [("step-1", "Day 1"), ("step-2", "Day 3"), ("step-3", "Day 5")])
    assert [(r.slug, r.people) for r in reach] == [("step-1", 2), ("step-2", 1), ("step-3", 0)]
    links = insights.clicks_per_link(db, *NOV)["step-1"]
    assert [(c.url, c.clicks, c.people) for c in links] == [
        ("https://runstronger.example/stretch", 2, 1), ("https://runstronger.example/plan", 1, 1)]


def test_the_dashboard_shows_them(logged_in, db, app):
    arrange(db)
    page = logged_in.get("/admin/?from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    for chart_id in ("chart-funnel-article", "chart-funnel-direct", "chart-growth",
                     "chart-reach"):
        assert f'id="{chart_id}"' in page, chart_id
    assert "https://runstronger.example/stretch" in page
    assert re.search(r'data-path="article".*?data-stage="landing_visits".*?>4<', page, re.DOTALL)


def test_axis_ticks_are_whole_numbers():
    for top in range(60):
        ticks = charts.integer_ticks(top)
        assert all(isinstance(x, int) for x in ticks)
        assert ticks[0] == 0 and ticks[-1] >= top
        steps = {b - a for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1  # evenly spaced
    assert charts.integer_ticks(5) != [0, 2, 5]
    svg = str(charts.signups_per_day([stats.DayRow(day=date(2026, 11, d), signups=d % 4)
                                      for d in range(1, 31)]))
    labels = re.findall(r'text-anchor="end" fill="#4a535c" font-weight="normal">([^<]+)<', svg)
    assert labels and all(x.replace(",", "").isdigit() for x in labels)
