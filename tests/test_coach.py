"""The coach's identity lives in emails/coach.yml: the pages and every email use it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from funnel.config import PROJECT_ROOT
from funnel.mail.check import sample_subscriber
from funnel.plan.coach import load_coach
from tests.test_emails import composer, run_cli, source

EMAILS = PROJECT_ROOT / "emails"
COACH = load_coach(EMAILS)


def test_the_article_and_landing_page_show_the_coach(client):
    for path in ("/", "/free-plan"):
        html = client.get(path).get_data(as_text=True)
        assert COACH.name in html, path
        assert re.search(r'<img src="/media/coach\.[0-9a-f]{12}\.svg"[^>]*alt="[^"]+"', html)
    assert COACH.bio.split(".")[0] in client.get("/free-plan").get_data(as_text=True)


def test_every_plan_email_is_signed_and_invites_a_reply():
    c = composer()
    msg = c.message(source("hip-mobility"), sample_subscriber(), key="k",
                    now=__import__("datetime").datetime(2026, 12, 1), delivery_id="d-1")
    assert msg.reply_to == COACH.reply_to
    for part in (msg.text, msg.html):
        assert COACH.sign_off in part and COACH.name in part
        assert "Hit reply and tell me how it went" in part
    assert re.search(r'<img [^>]*src="http://localhost/media/coach\.[0-9a-f]{12}\.png"', msg.html)


def test_mail_reply_to_setting_still_wins():
    from funnel.config import Settings, defaults
    from funnel.mail.compose import Composer
    from tests.conftest import TEST_SECRET

    config = {**defaults("/nonexistent"), "SECRET_KEY": TEST_SECRET,
              "MAIL_REPLY_TO": "desk@runstronger.example", "EMAILS_DIR": str(EMAILS)}
    c = Composer(Settings.from_config(config))
    msg = c.message(source("hip-mobility"), sample_subscriber(), key="k",
                    now=__import__("datetime").datetime(2026, 12, 1), delivery_id="d-1")
    assert msg.reply_to == "desk@runstronger.example"


def test_editing_the_coach_file_changes_the_emails(tmp_path):
    emails = Path(shutil.copytree(EMAILS, tmp_path / "emails"))
    path = emails / "coach.yml"
    path.write_text(path.read_text().replace('sign_off: "Run well,"', 'sign_off: "See you out there,"'))
    text = composer(emails_dir=emails).render(source("hip-mobility", emails), sample_subscriber(),
                                               "d-1").text
    assert "See you out there," in text and "Run well," not in text


@pytest.mark.parametrize("edit, expected", [
    (('reply_to: "nadia@runstronger.example"', 'reply_to: "not an address"'),
     "is not an email address"),
    (('name: "Nadia Brook"', 'name: ""'), "'name' is missing or empty"),
    (('photo: "images/coach.svg"', 'photo: "images/nobody.svg"'), "does not exist"),
    (('sign_off: "Run well,"', 'sign_of: "Run well,"'), "'sign_off' is missing"),
])
def test_check_points_at_mistakes_in_the_coach_file(tmp_path, edit, expected):
    emails = Path(shutil.copytree(EMAILS, tmp_path / "emails"))
    path = emails / "coach.yml"
    path.write_text(path.read_text().replace(*edit))
    result = run_cli(tmp_path, emails, "emails", "check")
    assert result.exit_code == 1, result.output
    assert re.search(rf"{re.escape(str(path))}:\d+: error: .*{re.escape(expected)}", result.output)
