"""The emails page (/admin/emails/) keeps the email check's answer between loads and
checks again as soon as any file under the emails folder changes: an edit on disk or
a save in the editor shows at the next load, and a kept answer shows the same page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from funnel.mail import check_kept
from funnel.mail.check import run_check
from tests.studio_support import STEP, STEP_FILE, copy_emails, open_editor, save


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


@pytest.fixture
def checks(monkeypatch) -> list[int]:
    """How many times the whole check ran."""
    ran: list[int] = []

    def counted(app):
        ran.append(1)
        return run_check(app)

    monkeypatch.setattr(check_kept, "run_check", counted)
    return ran


def page(client) -> str:
    resp = client.get("/admin/emails/")
    assert resp.status_code == 200
    # What differs between any two loads of a page: the CSRF token and the CSP nonce.
    html = resp.get_data(as_text=True)
    html = re.sub(r'name="csrf_token" value="[^"]*"', "", html)
    return re.sub(r'nonce="[^"]*"', "", html)


def test_a_second_load_with_nothing_changed_uses_the_kept_check(app, logged_in, checks):
    first = page(logged_in)
    assert page(logged_in) == first
    assert len(checks) == 1
    app.extensions.pop(check_kept.EXTENSION)  # forget it: checked afresh, the same page
    assert page(logged_in) == first
    assert len(checks) == 2
    assert check_kept.kept_check(app) == run_check(app)


def test_a_file_edited_on_disk_shows_at_the_next_load(logged_in, emails_dir, checks):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    assert "unknown variable 'frist_name'" not in page(logged_in)
    live.write_text(original.replace("Welcome to the plan.", "Welcome {{ frist_name }}."))
    shown = page(logged_in)
    assert "unknown variable &#39;frist_name&#39;" in shown or "unknown variable 'frist_name'" in shown
    # Put back at once: the same size and, likely, the same mtime tick; still seen.
    live.write_text(original)
    assert "frist_name" not in page(logged_in)
    assert len(checks) == 3


def test_a_file_added_or_removed_shows_at_the_next_load(logged_in, emails_dir):
    broken = emails_dir / "broadcasts" / "broken-issue.md"
    broken.write_text("---\nslug: broken-issue\n---\nNo subject.\n")
    assert "front matter needs &#39;subject&#39;" in page(logged_in) or \
        "front matter needs 'subject'" in page(logged_in)
    broken.unlink()
    assert "broken-issue" not in page(logged_in)


def test_the_shipped_emails_show_nothing_broken(logged_in):
    shown = page(logged_in)
    assert "Every email passes the checks." in shown and "Broken" not in shown
    # The coach's rule sends still-reading.md: listed as such, not as a broken plan step.
    rule_part = shown.split("<h2>Sent by a rule</h2>")[1].split("<h2>")[0]
    assert 'href="/admin/emails/still-reading"' in rule_part
    assert logged_in.get("/admin/emails/still-reading").status_code == 200
    assert logged_in.get("/admin/emails/still-reading/edit").status_code == 200


def test_a_save_in_the_editor_shows_at_the_next_load(logged_in, emails_dir, checks):
    before = page(logged_in)
    assert "unknown front matter key" not in before
    live = emails_dir / STEP_FILE
    fields = open_editor(logged_in)
    edited = live.read_text().replace("slug: lateral-hip-stretch",
                                      "slug: lateral-hip-stretch\ncolour: blue", 1)
    assert save(logged_in, fields, edited, slug=STEP).status_code == 303
    assert live.read_text() == edited  # a warning does not stop a save
    assert "unknown front matter key &#39;colour&#39;" in page(logged_in) or \
        "unknown front matter key 'colour'" in page(logged_in)


def test_the_fingerprint_sees_every_kind_of_change(tmp_path):
    root = tmp_path / "emails"
    (root / "images").mkdir(parents=True)
    (root / "a.md").write_text("one")
    big = root / "images" / "big.png"
    big.write_bytes(b"x" * (check_kept.READ_UNDER + 10))

    def replace_picture() -> None:  # as the studio saves one: a new file, the same size
        (root / "images" / "new.tmp").write_bytes(b"y" * (check_kept.READ_UNDER + 10))
        os.replace(root / "images" / "new.tmp", big)

    def add_deep() -> None:
        (root / "sequences").mkdir()
        (root / "sequences" / "c.md").write_text("deep")

    changes = [
        lambda: (root / "a.md").write_text("two"),  # the same size, within one tick
        replace_picture,
        lambda: (root / "b.md").write_text("new"),
        lambda: (root / "b.md").unlink(),
        add_deep,
    ]
    before = check_kept.folder_fingerprint(root)
    assert check_kept.folder_fingerprint(root) == before
    for change in changes:
        change()
        after = check_kept.folder_fingerprint(root)
        assert after != before
        before = after
