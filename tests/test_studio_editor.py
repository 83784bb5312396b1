"""The coach's editor (/admin/emails/<slug>/edit): the whole file in a field named
``source``, checked and previewed before saving; errors keep a draft and the live
email untouched; every save a revision with its diff and Restore; a version saved
elsewhere since the editor opened it is never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from funnel.mail.check import ERROR, run_check
from funnel.models import EmailRevision
from tests.admin_support import ADMIN
from tests.studio_support import (
    STEP,
    STEP_FILE,
    copy_emails,
    form_fields,
    open_editor,
    save,
)


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def revisions(db) -> list[EmailRevision]:
    db.rollback()
    return list(db.scalars(select(EmailRevision).order_by(EmailRevision.id)))


def test_the_editor_shows_the_whole_file_and_a_save_goes_live(logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    page = logged_in.get(f"/admin/emails/{STEP}/edit").get_data(as_text=True)
    assert 'name="source"' in page
    assert "slug: lateral-hip-stretch" in page and "# The lateral hip and low back stretch" in page
    assert "Part 1: the lateral hip and low back stretch" in page  # the preview's subject
    fields = open_editor(logged_in)
    edited = original.replace("Welcome to the plan.", "Welcome aboard, and thank you.")
    # A browser posts a textarea's lines with CRLF; the file keeps LF.
    resp = save(logged_in, fields, edited.replace("\n", "\r\n"))
    assert resp.status_code == 303
    assert live.read_text() == edited
    [rev] = revisions(db)
    assert (rev.path, rev.kind, rev.author) == (STEP_FILE, "saved", ADMIN)
    assert rev.before == original and rev.after == edited
    page = logged_in.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"Saved: {STEP_FILE} is live." in page
    assert f"#{rev.id} · " in page and ADMIN in page
    assert "+Welcome aboard, and thank you." in page  # the diff
    assert "-Welcome to the plan." in page


def test_preview_without_javascript_shows_the_check_and_saves_nothing(logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    fields = open_editor(logged_in)
    typo = original.replace("subject:", "subjet:", 1).replace("Part 1:", "Part one:", 1)
    resp = save(logged_in, fields, typo, action="preview")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert f"{STEP_FILE}:3: warning: unknown front matter key &#39;subjet&#39; (did you mean " \
           "&#39;subject&#39;?)" in page
    assert f"{STEP_FILE}:1: error: front matter needs &#39;subject&#39;" in page
    assert "Part one: the lateral hip" in page  # what was typed stays in the field
    assert live.read_text() == original and revisions(db) == []


def test_a_save_with_errors_is_kept_as_a_draft_and_the_live_email_stays_whole(
        logged_in, emails_dir, db, app):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    fields = open_editor(logged_in)
    broken = original.replace("Hi {{ first_name }},", "Hi {{ frist_name }},")
    resp = save(logged_in, fields, broken)
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Kept as a draft" in page and "is unchanged" in page
    assert "unknown variable &#39;frist_name&#39; (did you mean &#39;first_name&#39;?)" in page
    assert live.read_text() == original
    assert (emails_dir / (STEP_FILE + ".draft")).read_text() == broken
    assert not [p for p in run_check(app) if p.level == ERROR]  # the live emails still pass
    assert [r.kind for r in revisions(db)] == ["draft"]
    # Opened again, the editor holds the draft and says so.
    page = logged_in.get(f"/admin/emails/{STEP}/edit").get_data(as_text=True)
    assert "You are editing a draft" in page and "frist_name" in page
    # Fixed and saved: it goes live and the draft is gone.
    fixed = broken.replace("frist_name", "first_name").replace("Welcome", "Hello and welcome", 1)
    resp = save(logged_in, open_editor(logged_in), fixed)
    assert resp.status_code == 303
    assert live.read_text() == fixed
    assert not (emails_dir / (STEP_FILE + ".draft")).exists()
    assert [r.kind for r in revisions(db)] == ["draft", "saved"]


def test_a_file_changed_since_the_editor_opened_it_is_not_overwritten(logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    fields = open_editor(logged_in)
    theirs = original.replace("Welcome to the plan.", "Changed on the server.")
    live.write_text(theirs)
    mine = original.replace("Welcome to the plan.", "Changed in the browser.")
    resp = save(logged_in, fields, mine)
    assert resp.status_code == 409
    page = resp.get_data(as_text=True)
    assert "Not saved" in page and "was changed since you opened it" in page
    assert 'id="disk-version"' in page and "Changed on the server." in page
    assert 'id="your-version"' in page and "Changed in the browser." in page
    assert live.read_text() == theirs and revisions(db) == []
    # Having seen both, saving again from that page replaces the version on disk.
    resp = save(logged_in, {**fields, "base": open_editor(logged_in)["base"]}, mine)
    assert resp.status_code == 303 and live.read_text() == mine


def test_two_tabs_saving_the_same_file_the_second_is_refused(logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    tab_one, tab_two = open_editor(logged_in), open_editor(logged_in)
    first = original.replace("Welcome to the plan.", "From tab one.")
    assert save(logged_in, tab_one, first).status_code == 303
    resp = save(logged_in, tab_two, original.replace("Welcome to the plan.", "From tab two."))
    assert resp.status_code == 409
    assert "From tab one." in resp.get_data(as_text=True)
    assert live.read_text() == first
    assert len(revisions(db)) == 1


def test_two_tabs_saving_drafts_the_second_is_refused_and_shown_both(
        logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    draft = emails_dir / (STEP_FILE + ".draft")
    original = live.read_text()
    tab_one, tab_two = open_editor(logged_in), open_editor(logged_in)
    first = original.replace("Hi {{ first_name }},", "Hi {{ frist_name }}, from tab one")
    second = original.replace("Hi {{ first_name }},", "Hi {{ nmae }}, from tab two")
    resp = save(logged_in, tab_one, first)
    assert resp.status_code == 200 and "Kept as a draft" in resp.get_data(as_text=True)
    resp = save(logged_in, tab_two, second)
    assert resp.status_code == 409
    page = resp.get_data(as_text=True)
    assert (f"Not saved: the check found errors, so this would be kept as a draft, but the "
            f"draft of {STEP_FILE} was changed since you opened it") in page
    assert "The draft saved since" in page
    assert 'id="disk-version"' in page and "from tab one" in page.split('id="disk-version"')[1]
    assert "from tab two" in page.split('id="your-version"')[1]
    assert "unknown variable &#39;nmae&#39;" in page  # its check is still shown
    assert draft.read_text() == first and live.read_text() == original
    assert [r.kind for r in revisions(db)] == ["draft"]
    # Having seen both, saving again from that page replaces the draft with this tab's.
    resp = save(logged_in, form_fields(page), second)
    assert resp.status_code == 200 and "Kept as a draft" in resp.get_data(as_text=True)
    assert draft.read_text() == second and live.read_text() == original
    assert [r.kind for r in revisions(db)] == ["draft", "draft"]


def test_two_tabs_that_opened_the_same_draft_the_second_draft_save_is_refused(
        logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    draft = emails_dir / (STEP_FILE + ".draft")
    original = live.read_text()
    broken = original.replace("Hi {{ first_name }},", "Hi {{ frist_name }},")
    assert save(logged_in, open_editor(logged_in), broken).status_code == 200
    tab_one, tab_two = open_editor(logged_in), open_editor(logged_in)
    assert tab_one["draft_base"]  # both opened the draft
    one = broken.replace("Welcome to the plan.", "Tab one's welcome.")
    resp = save(logged_in, tab_one, one)
    assert resp.status_code == 200
    tab_one_after = form_fields(resp.get_data(as_text=True))
    resp = save(logged_in, tab_two, broken.replace("Welcome to the plan.", "Tab two's."))
    assert resp.status_code == 409 and "Tab one&#39;s welcome." in resp.get_data(as_text=True)
    assert draft.read_text() == one
    # Tab one goes on saving drafts over its own: no conflict with itself.
    again = one.replace("Tab one's welcome.", "Tab one, again.")
    resp = save(logged_in, tab_one_after, again)
    assert resp.status_code == 200 and draft.read_text() == again
    # A save without errors from the stale tab still goes live: the draft it replaces
    # stays in the history, restorable.
    clean = original.replace("Welcome to the plan.", "Clean from tab two.")
    resp = save(logged_in, tab_two, clean)
    assert resp.status_code == 303 and live.read_text() == clean and not draft.exists()
    assert [r.after for r in revisions(db)][-2] == again


def test_restore_puts_an_earlier_revision_of_a_plan_email_back(logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    v1 = original.replace("Welcome to the plan.", "Version one.")
    v2 = original.replace("Welcome to the plan.", "Version two.")
    assert save(logged_in, open_editor(logged_in), v1).status_code == 303
    assert save(logged_in, open_editor(logged_in), v2).status_code == 303
    first = revisions(db)[0]
    fields = open_editor(logged_in)
    resp = logged_in.post(f"/admin/emails/{STEP}/restore",
                          data={**fields, "revision": str(first.id)})
    assert resp.status_code == 303
    assert live.read_text() == v1
    rows = revisions(db)
    assert [r.kind for r in rows] == ["saved", "saved", "restored"]
    assert rows[-1].restored_from == first.id and rows[-1].before == v2
    page = logged_in.get(f"/admin/emails/{STEP}/edit").get_data(as_text=True)
    assert f"Revision #{first.id} restored" in page and f"restored #{first.id}" in page


def test_restore_with_a_stale_page_is_refused_like_a_save(logged_in, emails_dir, db):
    live = emails_dir / STEP_FILE
    original = live.read_text()
    stale = open_editor(logged_in)
    v1 = original.replace("Welcome to the plan.", "Version one.")
    assert save(logged_in, stale, v1).status_code == 303
    first = revisions(db)[0]
    resp = logged_in.post(f"/admin/emails/{STEP}/restore", data={**stale, "revision": "999"})
    assert resp.status_code == 404 and "has no revision #999" in resp.get_data(as_text=True)
    resp = logged_in.post(f"/admin/emails/{STEP}/restore",
                          data={**stale, "revision": str(first.id)})
    assert resp.status_code == 409 and live.read_text() == v1


def test_the_check_endpoint_answers_as_the_coach_types(logged_in, emails_dir):
    fields = open_editor(logged_in)
    original = (emails_dir / STEP_FILE).read_text()
    resp = logged_in.post(f"/admin/emails/{STEP}/check",
                          data={"csrf_token": fields["csrf_token"],
                                "source": original.replace("subject:", "subjet:", 1)},
                          headers={"Accept": "application/json"})
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["errors"] is True
    assert f"{STEP_FILE}:3: warning: unknown front matter key 'subjet' (did you mean " \
           "'subject'?)" in [n["display"] for n in data["notes"]]
    resp = logged_in.post(f"/admin/emails/{STEP}/check",
                          data={"csrf_token": fields["csrf_token"], "source": original},
                          headers={"Accept": "application/json"})
    data = resp.get_json()
    assert data["notes"] == [] and data["subject"].startswith("Part 1:")
    assert "Alex" in data["text"] and "<html" in data["html"]


@pytest.mark.parametrize("slug, needle", [
    ("layout.html", "{{ unsubscribe_url }}"),
    ("layout.txt", "{{ unsubscribe_url }}"),
])
def test_the_layout_is_editable_and_cannot_lose_its_unsubscribe_link(
        logged_in, emails_dir, slug, needle):
    path = emails_dir / "layout" / ("base." + slug.split(".")[1])
    original = path.read_text()
    fields = open_editor(logged_in, slug)
    resp = save(logged_in, fields, original.replace(needle, "https://example.com/"), slug=slug)
    assert resp.status_code == 200 and "Kept as a draft" in resp.get_data(as_text=True)
    assert path.read_text() == original
    resp = save(logged_in, fields, original.replace("</body>", "<!-- hi --></body>")
                if slug == "layout.html" else original + "\n", slug=slug)
    assert resp.status_code == 303 and path.read_text() != original


def test_the_end_of_plan_piece_is_editable(logged_in, emails_dir):
    path = emails_dir / "next-step.md"
    fields = open_editor(logged_in, "next-step.md")
    text = path.read_text() + "\nSee you on the trails.\n"
    resp = save(logged_in, fields, text, slug="next-step.md")
    assert resp.status_code == 303 and path.read_text() == text


def test_the_emails_list_links_every_email_to_its_editor(logged_in):
    page = logged_in.get("/admin/emails/").get_data(as_text=True)
    for slug in (STEP, "confirm", "first-issue", "layout.html", "next-step.md"):
        assert f'href="/admin/emails/{slug}/edit"' in page, slug
