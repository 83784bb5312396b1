"""The save itself, as any front calls it (funnel.studio.Studio): two saves racing
from the same version, one wins and the other is told; a new file by path; a slug
changed in the front matter; EMAILS_DIR is the only emails folder the code reads."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from funnel.config import PROJECT_ROOT
from funnel.mail.check import route_checker
from funnel.models import EmailRevision
from funnel.studio import Studio, StudioError
from funnel.studio.files import content_hash
from tests.admin_support import ADMIN
from tests.studio_support import STEP, STEP_FILE, copy_emails, open_editor, save


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def studio(app, session) -> Studio:
    rt = app.extensions["funnel"]
    return Studio(rt.settings, session, rt.clock, route_checker(app))


def test_two_saves_racing_from_one_version_one_wins_the_other_is_refused(app, emails_dir, db):
    rt = app.extensions["funnel"]
    live = emails_dir / STEP_FILE
    original = live.read_text()
    base = content_hash(original)
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def save_as(words: str) -> None:
        with rt.sessions() as session:
            start.wait()
            result = studio(app, session).save_email_source(
                STEP, original.replace("Welcome to the plan.", words), ADMIN, base)
            outcomes[words] = result.outcome

    threads = [threading.Thread(target=save_as, args=(w,)) for w in ("Tab one.", "Tab two.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["conflict", "saved"]
    [winner] = [w for w, o in outcomes.items() if o == "saved"]
    assert live.read_text() == original.replace("Welcome to the plan.", winner)
    db.rollback()
    assert [r.after for r in db.scalars(select(EmailRevision))] == [live.read_text()]


def test_a_new_newsletter_by_path_and_not_twice(app, emails_dir, db):
    rt = app.extensions["funnel"]
    text = ("---\nslug: june-notes\nsubject: \"June: hills, and a rest week\"\n"
            "preheader: \"Why the easy week matters.\"\n---\nHi {{ first_name }},\n\n"
            "Three hill sessions this month.\n")
    with rt.sessions() as session:
        s = studio(app, session)
        result = s.save_email_source("broadcasts/june-notes.md", text, ADMIN, "")
        assert result.outcome == "saved" and result.file.slug == "june-notes"
        assert (emails_dir / "broadcasts" / "june-notes.md").read_text() == text
        # Saving "a new file" again over the one now there is a conflict, not an overwrite.
        again = s.save_email_source("broadcasts/june-notes.md", text + "More.\n", ADMIN, "")
        assert again.outcome == "conflict" and again.disk_text == text
        with pytest.raises(StudioError, match="is not an email file"):
            s.save_email_source("broadcasts/../../june.md", text, ADMIN, "")
        # A broadcast whose slug is not its file name is kept as a draft.
        odd = s.save_email_source("broadcasts/july.md", text, ADMIN, "")
        assert odd.outcome == "draft"
        assert any("name the file june-notes.md" in n.message for n in odd.checked.notes)
        assert not (emails_dir / "broadcasts" / "july.md").exists()


def test_a_slug_changed_in_the_front_matter_follows_to_the_new_address(logged_in, emails_dir):
    original = (emails_dir / STEP_FILE).read_text()
    resp = save(logged_in, open_editor(logged_in),
                original.replace(f"slug: {STEP}", "slug: hip-stretch", 1))
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/admin/emails/hip-stretch/edit")
    assert logged_in.get("/admin/emails/hip-stretch/edit").status_code == 200
    # The history follows the file, not the old slug.
    assert "#1 · " in logged_in.get("/admin/emails/hip-stretch/edit").get_data(as_text=True)


def test_a_slug_already_used_by_another_email_is_an_error(logged_in, emails_dir):
    original = (emails_dir / STEP_FILE).read_text()
    resp = save(logged_in, open_editor(logged_in),
                original.replace(f"slug: {STEP}", "slug: confirm", 1))
    assert resp.status_code == 200
    assert "slug &#39;confirm&#39; is already used by confirm.md" in resp.get_data(as_text=True)
    assert (emails_dir / STEP_FILE).read_text() == original


def test_only_the_setting_names_the_emails_folder():
    """Every reader of emails goes through EMAILS_DIR: no module builds the path to the
    shipped folder except the default setting and the first-start copy."""
    pattern = re.compile(r"""PROJECT_ROOT\s*/\s*["']emails|["']emails/(sequence|system|"""
                         r"""broadcasts|layout|images)""")
    found = sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "funnel").rglob("*.py")
                   if pattern.search(p.read_text(encoding="utf-8")))
    assert found == ["funnel/__init__.py", "funnel/config.py"]
