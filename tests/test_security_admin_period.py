"""A period the dashboard cannot show is a 400 with the period form, never a 500."""

from __future__ import annotations

import pytest

from tests.test_admin import admin, logged_in  # noqa: F401  (fixtures)


@pytest.mark.parametrize("query", [
    "from=9999-12-31",                 # used to be a 500: the day after 9999-12-31
    "from=9999-12-31&to=9999-12-31",
    "from=0001-01-01&to=2026-12-01",   # used to be a 500: 400 days before 0001-01-01
    "to=0001-01-01",
    "from=1999-12-31&to=2000-01-01",
    "from=2026-11-01&to=2031-01-01",
    "from=yesterday",
    "from=2026-13-01",
])
def test_bad_period_is_400_with_the_form(logged_in, query):  # noqa: F811
    resp = logged_in.get(f"/admin/?{query}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400, html[-500:]
    assert '<input type="date" id="from" name="from"' in html  # the form, to try again
    assert "02 Nov 2026 to 01 Dec 2026" in html  # with the default period shown
    assert "2000-01-01" in html or "2026-12-31" in html  # and what is accepted


@pytest.mark.parametrize("query", ["from=9999-12-31", "from=0001-01-01&to=2026-12-01"])
def test_bad_period_in_a_csv_download_is_400(logged_in, query):  # noqa: F811
    resp = logged_in.get(f"/admin/stats.csv?report=daily&{query}")
    assert resp.status_code == 400


def test_good_periods_still_work(logged_in):  # noqa: F811
    resp = logged_in.get("/admin/?from=2026-11-01&to=2026-11-30")
    assert resp.status_code == 200
    assert "01 Nov 2026 to 30 Nov 2026" in resp.get_data(as_text=True)
    assert logged_in.get("/admin/?days=7").status_code == 200
