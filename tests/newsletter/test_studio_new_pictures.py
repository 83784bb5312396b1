"""A picture in a new newsletter, from /admin/broadcasts/new: with the page's script
(the editor's upload, no slug yet) and without it (the form posted whole, the
picture added at the end of the text). A good PNG is drawn again and its Markdown
given; an SVG, a file pretending to be a PNG, one over 5 MB and one without alt text
are refused with the reason, keeping what was typed and storing nothing. Editors
may upload, viewers may not."""

from __future__ import annotations

import html
import re

import pytest
from PIL import Image

from funnel.accounts.passwords import hash_password
from funnel.models import AdminUser
from funnel.studio.images import MAX_UPLOAD_BYTES
from tests.admin_support import PASSWORD
from tests.conftest import csrf_token
from tests.studio_support import multipart, png, revision_count, snapshot

NEW = "/admin/broadcasts/new"
TYPED = {"subject": "Hill repeats, the easy way", "preheader": "One session a week.",
         "body": "Hi {{ first_name }},\n\nSix times up, walk down.\n", "slug": "",
         "other_subjects": ""}
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
       b"<script>alert(1)</script></svg>")
NOT_A_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
TOO_BIG = png() + b"\x00" * (MAX_UPLOAD_BYTES + 10)


def page_text(resp) -> str:
    return html.unescape(resp.get_data(as_text=True))


def body_field(resp) -> str:
    m = re.search(r'<textarea id="body"[^>]*>(.*?)</textarea>', resp.get_data(as_text=True),
                  re.S)
    assert m, "no body field on the page"
    return html.unescape(m.group(1))


def post_form(client, picture: bytes | None, name: str = "hill.png",
              alt: str = "A runner on a hill", **fields):
    """The new page's form posted whole with its Upload button (no script)."""
    data = {"csrf_token": csrf_token(client, NEW), **TYPED, "action": "upload", "alt": alt,
            **fields}
    return client.post(NEW, data=multipart(data, picture, name),
                       content_type="multipart/form-data; boundary=b")


def post_script(client, picture: bytes | None, name: str = "hill.png",
                alt: str = "A runner on a hill"):
    """What the page's script sends: the picture alone, to the editor's upload."""
    data = {"csrf_token": csrf_token(client, NEW), "alt": alt}
    return client.post("/admin/emails/pictures", data=multipart(data, picture, name),
                       content_type="multipart/form-data; boundary=b",
                       headers={"Accept": "application/json"})


def log_in_as(app, db, clock, email: str, role: str):
    db.add(AdminUser(email=email, password_hash=hash_password(PASSWORD), created_at=clock.now,
                     role=role))
    db.commit()
    client = app.test_client()
    resp = client.post("/admin/login", data={"email": email, "password": PASSWORD,
                                             "csrf_token": csrf_token(client, "/admin/login")})
    assert resp.status_code == 302
    return client


def test_the_new_page_offers_the_editors_picture_upload(logged_in):
    page = logged_in.get(NEW).get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    assert 'id="picture-upload"' in page and 'data-target="body"' in page
    assert 'data-picture-url="/admin/emails/pictures"' in page
    assert "Upload picture" in page and "What it shows (alt text, required)" in page
    assert "/admin/emails/studio-static/editor.js" in page


def test_without_javascript_the_picture_is_added_to_the_text_and_previewed(logged_in,
                                                                           emails_dir, db):
    resp = post_form(logged_in, png(text_chunk="secret note"), name="Hill Run!.PNG")
    assert resp.status_code == 200, page_text(resp)
    snippet = "![A runner on a hill](images/hill-run.png)"
    assert "Picture saved as images/hill-run.png and added at the end of the text." \
        in page_text(resp)
    assert body_field(resp) == TYPED["body"].rstrip() + "\n\n" + snippet + "\n"
    assert snippet in page_text(resp)  # shown, to move where it should show
    assert re.search(r'hill-run\.[0-9a-f]{12}\.png', page_text(resp))  # in the previews
    assert 'id="check-ok"' in resp.get_data(as_text=True)
    with Image.open(emails_dir / "images" / "hill-run.png") as img:
        assert img.format == "PNG" and img.size == (200, 120)
        assert "Comment" not in img.info  # drawn again: the metadata did not ride along
    # Nothing saved as a newsletter until Save; then the file holds the picture.
    assert not (emails_dir / "broadcasts" / "hill-repeats-the-easy-way.md").exists()
    assert revision_count(db) == 0
    saved = logged_in.post(NEW, data={"csrf_token": csrf_token(logged_in, NEW), **TYPED,
                                      "body": body_field(resp), "action": "save"})
    assert saved.status_code == 303
    text = (emails_dir / "broadcasts" / "hill-repeats-the-easy-way.md").read_text()
    assert text.endswith(snippet + "\n")


def test_with_javascript_the_picture_goes_to_the_editors_upload(logged_in, emails_dir):
    resp = post_script(logged_in, png(300, 100), name="coffee.png", alt="A cup of coffee")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["snippet"] == "![A cup of coffee](images/coffee.png)"
    with Image.open(emails_dir / "images" / "coffee.png") as img:
        assert img.format == "PNG" and img.size == (300, 100)


REFUSED = [
    pytest.param(SVG, "drawing.svg", "A drawing", 400, "SVG drawings cannot be uploaded",
                 id="svg"),
    pytest.param(NOT_A_PNG, "fake.png", "Noise", 400, "not a PNG or JPEG picture",
                 id="pretending-png"),
    pytest.param(TOO_BIG, "big.png", "A big one", 413, "at most 5 MB. Nothing was saved.",
                 id="over-5-mb"),
    pytest.param(png(), "hill.png", "   ", 400, "Write the alt text", id="no-alt"),
]


@pytest.mark.parametrize("data, name, alt, status, words", REFUSED)
def test_a_bad_picture_is_refused_on_the_page_keeping_the_text(logged_in, emails_dir, db,
                                                              data, name, alt, status, words):
    before = snapshot(emails_dir)
    resp = post_form(logged_in, data, name=name, alt=alt)
    assert resp.status_code == status
    assert words in page_text(resp)
    assert body_field(resp) == TYPED["body"]  # what was typed is still there
    assert TYPED["subject"] in page_text(resp)
    assert snapshot(emails_dir) == before and revision_count(db) == 0


@pytest.mark.parametrize("data, name, alt, status, words", REFUSED)
def test_a_bad_picture_is_refused_to_the_script(logged_in, emails_dir, db, data, name, alt,
                                                status, words):
    before = snapshot(emails_dir)
    resp = post_script(logged_in, data, name=name, alt=alt)
    assert resp.status_code == status
    assert words in resp.get_json()["error"]
    assert snapshot(emails_dir) == before and revision_count(db) == 0


def test_far_over_the_limit_the_page_says_so_in_its_own_words(logged_in, emails_dir):
    before = snapshot(emails_dir)
    resp = post_form(logged_in, TOO_BIG * 2, name="bigger.png")
    assert resp.status_code == 413
    assert ("That was more than the new-newsletter page takes: an email's text is at most "
            "1 MB and a picture at most 5 MB. Nothing was saved.") in page_text(resp)
    assert snapshot(emails_dir) == before


def test_an_editor_may_upload_and_a_viewer_may_not(app, db, clock, emails_dir):
    editor = log_in_as(app, db, clock, "editor@example.com", "editor")
    assert post_form(editor, png(), name="editor.png").status_code == 200
    assert post_script(editor, png(), name="editor-js.png").status_code == 201
    viewer = log_in_as(app, db, clock, "viewer@example.com", "viewer")
    before = snapshot(emails_dir)
    token = csrf_token(viewer, "/admin/")
    for path in (NEW, "/admin/emails/pictures"):
        resp = viewer.post(path, data=multipart(
            {"csrf_token": token, **TYPED, "action": "upload", "alt": "A runner"}, png(),
            "viewer.png"), content_type="multipart/form-data; boundary=b")
        assert resp.status_code == 403, path
        assert "This page is not for your role" in page_text(resp)
    assert snapshot(emails_dir) == before
