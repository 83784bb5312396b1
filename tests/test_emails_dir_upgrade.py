"""After an upgrade that ships a new email file, an existing EMAILS_DIR gains it on the
next start: never over the coach's file, never deleting one, each addition logged,
and a file the coach deleted after it was offered is not brought back."""

from __future__ import annotations

import errno
import logging
import shutil
import threading
from pathlib import Path

import pytest

from funnel import create_app
from funnel.studio import emails_dir as emails_dir_module
from funnel.studio.emails_dir import MANIFEST, ensure_emails_dir
from tests.studio_support import SHIPPED

NEW_SYSTEM = "system/welcome-back.md"
NEW_LAYOUT = "layout/footer.html"
NEW_STEP = "sequences/plan/09-new-step.md"
NEW_ISSUE = "broadcasts/launch.md"


def release(tmp_path: Path, name: str, extra: dict[str, str] | None = None) -> Path:
    """A copy of the shipped emails as one version of the code ships them."""
    folder = Path(shutil.copytree(SHIPPED, tmp_path / name / "emails"))
    for rel, text in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


@pytest.fixture
def upgrade(tmp_path):
    old = release(tmp_path, "v1")
    new = release(tmp_path, "v2", {
        NEW_SYSTEM: "---\nslug: welcome-back\nsubject: Welcome back\n---\nHi.\n",
        NEW_LAYOUT: "<p>footer</p>\n",
        NEW_STEP: "---\nslug: new-step\nsubject: A new step\n---\nHi.\n",
        NEW_ISSUE: "---\nslug: launch\nsubject: Launch\n---\nHi.\n",
        "system/confirm.md": "the new version's confirmation email\n",
    })
    target = tmp_path / "var" / "lib" / "funnel" / "emails"
    assert ensure_emails_dir(target, old).filled
    return old, new, target


def test_an_upgrade_adds_the_new_shipped_files_and_keeps_the_coachs(upgrade):
    _old, new, target = upgrade
    confirm = target / "system" / "confirm.md"
    confirm.write_text("the coach's own confirmation email\n")
    (target / "broadcasts" / "mine.md").write_text("the coach's own newsletter\n")
    (target / "system" / "already-subscribed.md").unlink()  # offered in v1, deleted since
    before = {p for p in target.rglob("*") if p.is_file()}

    report = ensure_emails_dir(target, new)

    assert not report.filled
    assert report.added == [NEW_LAYOUT, NEW_SYSTEM]
    assert (target / NEW_SYSTEM).read_text() == (new / NEW_SYSTEM).read_text()
    assert (target / NEW_LAYOUT).read_text() == "<p>footer</p>\n"
    # A new plan step or newsletter would change who is mailed what: named, not added.
    assert report.held_back == [NEW_ISSUE, NEW_STEP]
    assert not (target / NEW_STEP).exists() and not (target / NEW_ISSUE).exists()
    assert confirm.read_text() == "the coach's own confirmation email\n"
    assert not (target / "system" / "already-subscribed.md").exists()
    assert before <= {p for p in target.rglob("*") if p.is_file()}  # nothing deleted
    manifest = (target / MANIFEST).read_text().splitlines()
    assert NEW_SYSTEM in manifest and NEW_STEP in manifest and "system/confirm.md" in manifest

    # Deleted by the coach after it was offered: the next start leaves it deleted.
    (target / NEW_SYSTEM).unlink()
    again = ensure_emails_dir(target, new)
    assert (again.added, again.held_back) == ([], [])
    assert not (target / NEW_SYSTEM).exists()


def test_the_app_start_adds_them_and_logs_each(app_config, tmp_path, caplog):
    # An EMAILS_DIR from before this version (no manifest) that lacks a system email.
    target = Path(shutil.copytree(SHIPPED, tmp_path / "emails"))
    (target / "system" / "fresh-link.md").unlink()
    caplog.set_level(logging.INFO, logger="funnel.studio.emails_dir")
    app = create_app({**app_config, "EMAILS_DIR": str(target)})
    try:
        assert (target / "system" / "fresh-link.md").read_text() == \
            (SHIPPED / "system" / "fresh-link.md").read_text()
        assert ("EMAILS_DIR: added system/fresh-link.md, shipped with this version and "
                "missing here") in caplog.messages
        caplog.clear()
        create_app({**app_config, "EMAILS_DIR": str(target)}).extensions[
            "funnel"].engine.dispose()
        assert not [m for m in caplog.messages if "EMAILS_DIR" in m]  # said once
    finally:
        app.extensions["funnel"].engine.dispose()


def test_a_process_that_cannot_write_there_says_what_is_missing_and_starts(
        app_config, tmp_path, caplog, monkeypatch):
    target = Path(shutil.copytree(SHIPPED, tmp_path / "emails"))
    (target / "system" / "fresh-link.md").unlink()

    def read_only(_folder):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(emails_dir_module, "locked", read_only)
    caplog.set_level(logging.INFO, logger="funnel.studio.emails_dir")
    app = create_app({**app_config, "EMAILS_DIR": str(target)})
    try:
        assert not (target / "system" / "fresh-link.md").exists()
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "lacks system/fresh-link.md" in warning.getMessage()
        assert "Read-only file system" in warning.getMessage()
        assert "the web service adds it on its start" in warning.getMessage()
    finally:
        app.extensions["funnel"].engine.dispose()


def test_processes_starting_together_add_each_file_once(upgrade):
    _old, new, target = upgrade
    start = threading.Barrier(4)
    reports = []

    def run() -> None:
        start.wait()
        reports.append(ensure_emails_dir(target, new))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(rel for r in reports for rel in r.added) == [NEW_LAYOUT, NEW_SYSTEM]
    assert not [p for p in target.rglob(".*") if p.name not in (MANIFEST, ".studio.lock")]
