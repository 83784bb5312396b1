"""A new newsletter written in the browser, and a test send whose every link works."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

from funnel.newsletter.drafting import propose_slug
from tests.admin_support import ADMIN
from tests.conftest import csrf_token
from tests.newsletter_support import run_worker

BODY = "Hi {{ first_name }},\n\nHill repeats: six times up, walk down.\n\n[Read the plan]({{ plan_url }})\n"


def _post_new(client, **fields):
    token = csrf_token(client, "/admin/broadcasts/new")
    data = {"csrf_token": token, "subject": "Hill repeats, the easy way", "preheader":
            "One session a week.", "body": BODY, "slug": "", "action": "save", **fields}
    return client.post("/admin/broadcasts/new", data=data)


def text(resp) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True))))


def test_the_slug_is_proposed_from_the_subject():
    assert propose_slug("Run Stronger #2: Hills, élan & grit!") == "run-stronger-2-hills-elan-grit"
    assert propose_slug("!!!") == "newsletter"


def test_a_new_newsletter_is_saved_as_a_file(logged_in, emails_dir, runner):
    page = logged_in.get("/admin/broadcasts/new")
    assert page.status_code == 200
    for name in ("subject", "preheader", "body", "slug"):
        assert f'name="{name}"' in page.get_data(as_text=True)
    resp = _post_new(logged_in)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/admin/broadcasts/hill-repeats-the-easy-way")
    path = emails_dir / "broadcasts" / "hill-repeats-the-easy-way.md"
    saved = path.read_text()
    assert "subject: Hill repeats, the easy way" in saved and "six times up" in saved
    show = logged_in.get("/admin/broadcasts/hill-repeats-the-easy-way")
    assert show.status_code == 200 and "Send me a test" in show.get_data(as_text=True)
    # The save is a revision like every editor save: who, and the change.
    history = runner.invoke(args=["emails", "history", "hill-repeats-the-easy-way"])
    assert history.exit_code == 0 and ADMIN in history.output, history.output


def test_preview_shows_the_email_and_saves_nothing(logged_in, emails_dir):
    resp = _post_new(logged_in, action="preview")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "Desktop preview" in body and "six times up" in body
    assert not (emails_dir / "broadcasts" / "hill-repeats-the-easy-way.md").exists()


def test_a_typo_is_flagged_and_not_saved(logged_in, emails_dir):
    resp = _post_new(logged_in, body="Hi {{ frist_name }},\n\nNews.\n")
    assert resp.status_code == 422
    assert "frist_name" in text(resp) and "did you mean" in text(resp)
    assert not (emails_dir / "broadcasts" / "hill-repeats-the-easy-way.md").exists()


def test_bad_input_is_refused_and_changes_nothing(logged_in, emails_dir):
    before = sorted(p.name for p in (emails_dir / "broadcasts").iterdir())
    for fields, message in (
        ({"slug": "../sequence/01-welcome"}, "no folders and no '..'"),
        ({"slug": "..%2Fescape"}, "no folders and no '..'"),
        ({"slug": "Has Spaces"}, "lowercase letters"),
        ({"slug": "new"}, "admin pages use"),
        ({"body": "x" * 1_000_001}, "one megabyte"),
        ({"subject": ""}, "the subject is empty"),
        ({"slug": "first-issue"}, "exists already"),
        ({"other_subjects": "\n".join(f"Subject {i}" for i in range(4))}, "at most 4"),
        ({"other_subjects": "Hill repeats, the easy way"}, "the same"),
    ):
        resp = _post_new(logged_in, **fields)
        assert resp.status_code == 422, fields
        assert message in text(resp), (fields, text(resp)[:500])
    assert sorted(p.name for p in (emails_dir / "broadcasts").iterdir()) == before


def test_two_subjects_are_written_for_a_subject_test(logged_in, emails_dir):
    resp = _post_new(logged_in, other_subjects="Six hills, one coffee")
    assert resp.status_code == 303
    saved = (emails_dir / "broadcasts" / "hill-repeats-the-easy-way.md").read_text()
    assert "subjects:\n- Hill repeats, the easy way\n- Six hills, one coffee" in saved


def _links(body: str) -> list[str]:
    return sorted(set(re.findall(r'https?://localhost[^\s"<>)\]]*', body)))


def test_every_link_in_a_test_send_works(logged_in, outbox, emails_dir, runner):
    assert _post_new(logged_in).status_code == 303
    token = csrf_token(logged_in, "/admin/broadcasts/hill-repeats-the-easy-way")
    resp = logged_in.post("/admin/broadcasts/hill-repeats-the-easy-way/send-test",
                          data={"csrf_token": token}, follow_redirects=True)
    assert f"Test queued for {ADMIN}: it goes out within a minute." in text(resp)
    assert len(outbox) == 0  # the worker sends it
    run_worker(runner)
    [msg] = outbox.to(ADMIN)
    assert msg["Subject"].startswith("[TEST] Hill repeats")
    links = _links(outbox.text(msg) + outbox.html(msg) + msg["List-Unsubscribe"])
    kinds = {urlsplit(u).path.split("/")[1] for u in links}
    assert {"view", "preferences", "unsubscribe"} <= kinds, links
    anonymous = logged_in.application.test_client()  # the reader is not signed in
    for url in links:
        path = urlsplit(url).path
        got = anonymous.get(path, follow_redirects=True)
        assert got.status_code < 400, (path, got.status_code)
        if path.startswith(("/preferences/", "/unsubscribe/")):
            assert "This was a test send" in text(got)
        if path.startswith("/view/"):
            assert "six times up" in got.get_data(as_text=True)
    # The mail client's one-click unsubscribe POST answers too, and changes nothing.
    unsub = next(urlsplit(u).path for u in links if "/unsubscribe/" in u)
    assert anonymous.post(unsub, data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_the_previews_test_send_links_work_too(logged_in, outbox, runner):
    token = csrf_token(logged_in, "/admin/emails/first-issue")
    logged_in.post("/admin/emails/first-issue/send-test",
                   data={"csrf_token": token, "to": "me@example.com"})
    run_worker(runner)
    [msg] = outbox.to("me@example.com")
    anonymous = logged_in.application.test_client()
    for url in _links(outbox.text(msg) + msg["List-Unsubscribe"]):
        assert anonymous.get(urlsplit(url).path).status_code < 400, url


def test_drafting_reads_the_studios_save_outcomes():
    from funnel.newsletter import drafting
    from funnel.studio import service

    assert (drafting.SAVED, drafting.CONFLICT) == (service.SAVED, service.CONFLICT)
