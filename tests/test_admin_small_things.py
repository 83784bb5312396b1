"""The small things people noticed: the time-zone menu, the "already confirmed"
page, the paused preference page, `db upgrade` on a new database, the README."""

from __future__ import annotations

import re
from pathlib import Path

from funnel.core import timezones
from tests.conftest import press_confirm, sign_up_and_confirm
from tests.test_preferences import EMAIL, page_text, post, prefs  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def test_time_zone_menu_offers_canonical_zones_grouped_by_region():
    zones = timezones.canonical_zones()
    for junk in ("Factory", "localtime", "posixrules", "US/Pacific", "Asia/Calcutta",
                 "Europe/Kiev", "GB", "Etc/GMT+5"):
        assert junk not in zones, junk
    for good in ("Europe/London", "Asia/Kolkata", "America/New_York", "UTC"):
        assert good in zones, good
    assert 300 < len(zones) < 500
    regions = [r for r, _z in timezones.grouped()]
    assert regions[:3] == ["Africa", "America", "Antarctica"] and "Europe" in regions
    # The current value (here an old alias a browser once sent) comes first and stays chosen.
    first_region, first_zones = timezones.grouped("Asia/Calcutta")[0]
    assert first_region == "Suggested" and first_zones[0][0] == "Asia/Calcutta"


def test_preference_page_menu_is_grouped_and_clean(client, prefs):  # noqa: F811
    body = client.get(prefs).get_data(as_text=True)
    menu = body[body.index('<select id="timezone"'):]
    menu = menu[:menu.index("</select>")]
    assert '<optgroup label="Europe">' in menu
    assert 'value="Factory"' not in menu and 'value="localtime"' not in menu
    assert re.search(r'<optgroup label="Suggested">\s*<option value="Europe/London" selected', menu)


def test_already_confirmed_page_does_not_promise_a_first_email(client, outbox):
    first = sign_up_and_confirm(client, outbox, "twice@example.com").get_data(as_text=True)
    assert "on its way now" in first
    link = outbox.link(outbox.to("twice@example.com")[0], "confirm")
    again = press_confirm(client, link).get_data(as_text=True)
    assert "already confirmed" in again
    assert "on its way" not in again


def test_paused_page_says_it_once(client, prefs):  # noqa: F811
    resp = post(client, prefs, "pause", length="1w")
    text = page_text(client.get(resp.location))
    assert text.count("Your emails are paused until") == 1
    # Opened later (no notice), the page still says it.
    assert page_text(client.get(prefs)).count("Your emails are paused until") == 1


def test_db_upgrade_says_what_it_did(tmp_path):
    from click.testing import CliRunner

    from funnel import create_app

    url = f"sqlite:///{tmp_path / 'new.db'}"
    app = create_app({"TESTING": True, "SECRET_KEY": "x" * 32, "DATABASE_URL": url})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert re.search(r"created the database at revision \S+", first.output)
    again = runner.invoke(args=["db", "upgrade"])
    assert "already up to date at revision" in again.output
    app.extensions["funnel"].engine.dispose()
    del CliRunner


def test_readme_mentions_no_api_that_does_not_exist():
    readme = (ROOT / "README.md").read_text()
    assert "the API" not in readme or "/api/v1" in readme
