"""``flask --app funnel emails history SLUG`` lists the editor's saves as the page
does; EMAILS_DIR outside the code is filled from the shipped emails on first start."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnel import create_app
from funnel.config import ConfigError
from funnel.studio import fill_emails_dir
from tests.admin_support import ADMIN
from tests.studio_support import SHIPPED, STEP, STEP_FILE, copy_emails, open_editor, save


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def test_history_prints_the_saves_the_page_lists(logged_in, runner, emails_dir, clock):
    original = (emails_dir / STEP_FILE).read_text()
    assert save(logged_in, open_editor(logged_in),
                original.replace("Welcome to the plan.", "Welcome, runner.")).status_code == 303
    clock.advance(hours=2)
    assert save(logged_in, open_editor(logged_in),
                original.replace("Hi {{ first_name }},", "Hi {{ frist_name }},")).status_code == 200
    page = logged_in.get(f"/admin/emails/{STEP}/edit").get_data(as_text=True)
    result = runner.invoke(args=["emails", "history", STEP])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{STEP_FILE} (plan step): 2 save(s) from the editor"
    assert lines[1] == f"#2  2026-12-01 11:00 UTC  {ADMIN}  draft  +2 -2"
    assert lines[2] == f"#1  2026-12-01 09:00 UTC  {ADMIN}  saved  +1 -1"
    # The page lists the same two, with the same counts.
    assert "#2 · 2026-12-01 11:00 UTC" in page and "#1 · 2026-12-01 09:00 UTC" in page
    assert "+1 −1" in page and "+2 −2" in page
    diff = runner.invoke(args=["emails", "history", STEP, "--diff"]).output
    assert "    +Welcome, runner." in diff and "    -Welcome to the plan." in diff


def test_emails_check_passes_the_live_files_and_names_a_waiting_draft(logged_in, runner,
                                                                      emails_dir):
    original = (emails_dir / STEP_FILE).read_text()
    resp = save(logged_in, open_editor(logged_in), original.replace("delay: 0", "delay: soon"))
    assert resp.status_code == 200 and "Kept as a draft" in resp.get_data(as_text=True)
    result = runner.invoke(args=["emails", "check"])
    assert result.exit_code == 0, result.output  # the live emails are whole
    assert (f"{STEP_FILE}.draft: a draft saved in the browser's editor (it had errors); "
            "the live file beside it is what gets sent") in result.output


def test_history_of_an_email_never_edited_and_of_a_bad_slug(runner):
    result = runner.invoke(args=["emails", "history", "confirm"])
    assert result.exit_code == 0
    assert result.output.strip() == "system/confirm.md (system email): 0 save(s) from the editor"
    result = runner.invoke(args=["emails", "history", "../../etc/passwd"])
    assert result.exit_code == 1 and "is not an email file" in result.output
    result = runner.invoke(args=["emails", "history", "no-such-email"])
    assert result.exit_code == 1 and "there is no email with the slug 'no-such-email'" in result.output


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_an_absent_or_empty_emails_dir_is_filled_from_the_shipped_emails(tmp_path):
    absent = tmp_path / "var" / "lib" / "funnel" / "emails"
    assert fill_emails_dir(absent, SHIPPED) is True
    assert _files(absent) == _files(SHIPPED) - {p for p in _files(SHIPPED)
                                                if p.endswith(".draft") or p.endswith(".lock")}
    assert (absent / STEP_FILE).read_text() == (SHIPPED / STEP_FILE).read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fill_emails_dir(empty, SHIPPED) is True and (empty / STEP_FILE).exists()
    # Never over what the coach wrote, nor over the shipped folder itself.
    (absent / STEP_FILE).write_text("the coach's own words")
    assert fill_emails_dir(absent, SHIPPED) is False
    assert (absent / STEP_FILE).read_text() == "the coach's own words"
    assert fill_emails_dir(SHIPPED, SHIPPED) is False


def test_the_app_fills_its_emails_dir_on_first_start_and_reads_from_it(app_config, tmp_path):
    target = tmp_path / "state" / "emails"
    app = create_app({**app_config, "EMAILS_DIR": str(target)})
    try:
        assert (target / STEP_FILE).exists()
        rt = app.extensions["funnel"]
        # Everything reads the folder the setting names: change it there, see it there.
        path = target / STEP_FILE
        path.write_text(path.read_text().replace("Part 1: the lateral hip", "Part 1: a new title"))
        from funnel.mail.check_support import find_source

        src = find_source(rt.settings.emails_dir, STEP)
        assert src is not None and src.subject.startswith("Part 1: a new title")
        assert rt.composer.render(src, __import__("funnel.mail.check", fromlist=["x"])
                                  .sample_subscriber()).subject.startswith("Part 1: a new title")
    finally:
        app.extensions["funnel"].engine.dispose()


def test_a_process_that_cannot_fill_it_says_what_to_do(app_config, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder's parent should be")
    with pytest.raises(ConfigError, match="Start funnel-web first"):
        create_app({**app_config, "EMAILS_DIR": str(blocker / "emails")})
