"""Content by tag: ``{% if "race" in tags %}`` in any email, and the check knows ``tags``."""

from __future__ import annotations

import pytest

from funnel import tagging
from funnel.core.states import TagSource
from funnel.mail.check import run_check
from tests.drip import make_emails_dir


@pytest.fixture
def emails_dir(tmp_path):
    root = make_emails_dir(tmp_path / "emails")
    (root / "sequence" / "01-welcome.md").write_text(
        "---\nslug: welcome\nsubject: \"Welcome\"\npreheader: \"Start here\"\ndelay: 0\n"
        "window: any\n---\nHi {{ first_name }}.\n\n"
        "{% if \"race\" in tags %}Race week: keep the long run short.{% else %}"
        "No race planned? Build slowly.{% endif %}\n\nYour tags: {{ tags }}.\n\n"
        "[The site]({{ site_url }})\n")
    return root


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def test_each_reader_gets_the_part_for_their_tags(app, db, clock, make_subscriber, run_worker,
                                                  outbox):
    racer = make_subscriber("racer@example.com")
    make_subscriber("walker@example.com")
    tagging.add_tag(db, racer.id, "race", now=clock.now, source=TagSource.CLI)
    tagging.add_tag(db, racer.id, "plan-pdf", now=clock.now, source=TagSource.CLI)
    db.commit()
    run_worker()
    racer_text = outbox.text(outbox.to("racer@example.com")[0])
    walker_text = outbox.text(outbox.to("walker@example.com")[0])
    assert "Race week: keep the long run short." in racer_text
    assert "No race planned" not in racer_text
    assert "Your tags: plan-pdf, race." in racer_text
    assert "No race planned? Build slowly." in walker_text
    assert "Race week" not in walker_text


def test_the_check_knows_tags_and_still_catches_typos(app, emails_dir):
    assert [p for p in run_check(app) if p.level == "error" and "welcome" in str(p.path)] == []
    path = emails_dir / "sequence" / "01-welcome.md"
    path.write_text(path.read_text().replace("in tags", "in tgas"))
    errors = [str(p) for p in run_check(app) if p.level == "error"]
    assert any("tgas" in e and "tags" in e for e in errors), errors
