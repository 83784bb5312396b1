"""Bad input to the editor and its picture upload gets a clear message and changes
nothing: a paste over 1 MB, a slug with ../, binary text, a picture that is SVG, GIF,
not a picture at all, too big or without alt text. Pictures that pass are drawn
again without their metadata; ``emails check`` names a missing one with "did you mean"."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from funnel.mail.check import run_check
from funnel.studio import StudioError, resolve
from funnel.studio.images import MAX_UPLOAD_BYTES
from tests.studio_support import (
    STEP,
    STEP_FILE,
    copy_emails,
    gif,
    jpeg_with_exif,
    multipart,
    open_editor,
    png,
    revision_count,
    save,
    snapshot,
)


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def upload(client, fields, data: bytes | None, name: str = "knee-drive.png", alt: str = "A runner"):
    body = multipart({"csrf_token": fields["csrf_token"], "alt": alt}, data, name)
    return client.post(f"/admin/emails/{STEP}/pictures", data=body,
                       content_type="multipart/form-data; boundary=b",
                       headers={"Accept": "application/json"})


# -- the text ------------------------------------------------------------------

def test_a_paste_over_one_megabyte_is_refused(logged_in, emails_dir, db):
    before = snapshot(emails_dir)
    fields = open_editor(logged_in)
    huge = (emails_dir / STEP_FILE).read_text() + "x" * (1024 * 1024)
    resp = save(logged_in, fields, huge)
    assert resp.status_code == 413
    assert "an email file can be at most 1 MB. Nothing was saved." in resp.get_data(as_text=True)
    # Far over: cut off before it is read, with the editor's own words.
    resp = save(logged_in, fields, "y" * (8 * 1024 * 1024))
    assert resp.status_code == 413
    assert "an email&#39;s text is at most 1 MB" in resp.get_data(as_text=True)
    assert snapshot(emails_dir) == before and revision_count(db) == 0


@pytest.mark.parametrize("path, status, words", [
    ("/admin/emails/../edit", 400, "is not the name of an email"),
    ("/admin/emails/..%2F..%2Fconfig/edit", 404, None),
    ("/admin/emails/no-such-email/edit", 404, "there is no email with the slug"),
    ("/admin/emails/Stretch!/edit", 400, "is not the name of an email"),
])
def test_a_slug_that_is_not_an_email_is_refused(logged_in, emails_dir, db, path, status, words):
    before = snapshot(emails_dir)
    fields = open_editor(logged_in)
    for resp in (logged_in.get(path),
                 logged_in.post(path, data={**fields, "source": "---\n---\n", "action": "save"})):
        assert resp.status_code == status
        if words:
            assert words in resp.get_data(as_text=True)
    assert snapshot(emails_dir) == before and revision_count(db) == 0


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sequence/../../x.md",
                                  "layout/../../config.py", "images/coach.svg", "coach.yml",
                                  "sequence/sub/x.md", ".."])
def test_the_studio_reaches_only_email_files(emails_dir, name):
    with pytest.raises(StudioError) as caught:
        resolve(emails_dir, name, new=True)
    assert caught.value.status in (400, 404) and caught.value.message


def test_binary_text_is_refused(logged_in, emails_dir, db):
    before = snapshot(emails_dir)
    resp = save(logged_in, open_editor(logged_in), "---\nslug: x\n---\n\x00\x01")
    # Refused before the editor sees it (the NUL byte, for every form) or by the editor.
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and ("binary data" in body or "NUL character" in body)
    assert snapshot(emails_dir) == before and revision_count(db) == 0


def test_the_editor_is_for_the_signed_in_admin_only(client, emails_dir, admin, db):
    before = snapshot(emails_dir)
    assert client.get(f"/admin/emails/{STEP}/edit").status_code == 302
    resp = client.post(f"/admin/emails/{STEP}/edit", data={"source": "x", "action": "save"})
    assert resp.status_code == 400  # no CSRF token: refused before anything else
    assert snapshot(emails_dir) == before and revision_count(db) == 0


# -- pictures ------------------------------------------------------------------

def test_a_picture_is_stored_drawn_again_and_its_markdown_given(logged_in, emails_dir, app):
    resp = upload(logged_in, open_editor(logged_in), png(text_chunk="secret note"),
                  name="Knee Drive!.PNG", alt="  A runner   driving the knee ")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    data = resp.get_json()
    assert data["snippet"] == "![A runner driving the knee](images/knee-drive.png)"
    stored = emails_dir / "images" / "knee-drive.png"
    with Image.open(stored) as img:
        assert img.format == "PNG" and img.size == (200, 120)
        assert "Comment" not in img.info  # the metadata did not ride along
    # The same upload again keeps one file; another picture of that name gets -2.
    assert upload(logged_in, open_editor(logged_in), png(text_chunk="secret note"),
                  name="knee-drive.png").get_json()["name"] == "knee-drive.png"
    assert upload(logged_in, open_editor(logged_in), png(300, 100),
                  name="knee-drive.png").get_json()["name"] == "knee-drive-2.png"
    # Used in an email, it passes the check.
    path = emails_dir / STEP_FILE
    path.write_text(path.read_text() + "\n" + data["snippet"] + "\n")
    assert not [p for p in run_check(app) if "knee-drive" in p.message]


def test_a_photo_loses_its_exif_and_a_wide_one_is_scaled_to_email_width(logged_in, emails_dir):
    resp = upload(logged_in, open_editor(logged_in), jpeg_with_exif(3000, 1500), name="track.jpg")
    assert resp.status_code == 201
    with Image.open(emails_dir / "images" / "track.jpg") as img:
        assert img.format == "JPEG" and img.size == (1200, 600)
        assert not img.getexif() and "exif" not in img.info


def test_the_editor_form_takes_a_picture_without_javascript(logged_in, emails_dir):
    fields = open_editor(logged_in)
    typed = (emails_dir / STEP_FILE).read_text() + "\nA new unsaved line.\n"
    resp = logged_in.post(f"/admin/emails/{STEP}/edit", content_type="multipart/form-data",
                          data={**fields, "source": typed, "action": "upload",
                                "alt": "A runner on a hill", "picture": (io.BytesIO(png()), "hill.png")})
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "![A runner on a hill](images/hill.png)" in page  # shown to copy
    assert "A new unsaved line." in page  # what was typed is still there
    assert (emails_dir / "images" / "hill.png").exists()
    assert "A new unsaved line." not in (emails_dir / STEP_FILE).read_text()


def test_a_refused_picture_without_javascript_keeps_the_typed_text(logged_in, emails_dir):
    before = snapshot(emails_dir)
    typed = (emails_dir / STEP_FILE).read_text() + "\nA new unsaved line.\n"
    resp = logged_in.post(f"/admin/emails/{STEP}/edit", content_type="multipart/form-data",
                          data={**open_editor(logged_in), "source": typed, "action": "upload",
                                "alt": "", "picture": (io.BytesIO(png()), "hill.png")})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "Write the alt text" in page and "A new unsaved line." in page
    assert snapshot(emails_dir) == before


@pytest.mark.parametrize("data, name, alt, status, words", [
    (png(), "a.png", "   ", 400, "Write the alt text"),
    (png(), "a.png", "A [bad] alt", 400, "square brackets"),
    (None, "a.png", "A runner", 400, "Choose a picture file"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
     b"</svg>", "drawing.svg", "A drawing", 400, "SVG drawings cannot be uploaded"),
    (b"<svg onload='alert(1)'/>", "innocent.png", "A drawing", 400, "SVG drawings"),
    (gif(), "moving.gif", "A loop", 400, "not a PNG or JPEG picture"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "fake.png", "Noise", 400,
     "not a PNG or JPEG picture"),
    (png()[:200], "cut.png", "Half a picture", 400, "not a PNG or JPEG picture"),
    (b"MZ\x90\x00" + b"\x00" * 5000, "program.png", "A program", 400, "not a PNG or JPEG"),
    (png(20, 20), "tiny.png", "A dot", 400, "at least 48"),
    (png(9000, 10), "strip.png", "A strip", 413, "at most 8000 a side"),
])
def test_a_bad_picture_is_refused_and_nothing_is_stored(logged_in, emails_dir, data, name, alt,
                                                        status, words):
    before = snapshot(emails_dir)
    resp = upload(logged_in, open_editor(logged_in), data, name=name, alt=alt)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert words in resp.get_json()["error"]
    assert snapshot(emails_dir) == before


def test_an_oversized_picture_is_refused(logged_in, emails_dir):
    before = snapshot(emails_dir)
    noise = png() + b"\x00" * (MAX_UPLOAD_BYTES + 10)
    resp = upload(logged_in, open_editor(logged_in), noise, name="big.png")
    assert resp.status_code == 413 and "at most 5 MB" in resp.get_json()["error"]
    # Far over: cut off before it is read, with the editor's own words.
    resp = upload(logged_in, open_editor(logged_in), noise * 2, name="bigger.png")
    assert resp.status_code == 413 and "a picture at most 5 MB" in resp.get_json()["error"]
    assert snapshot(emails_dir) == before


def test_a_decompression_bomb_is_refused(logged_in, emails_dir):
    out = io.BytesIO()
    Image.new("1", (7999, 7999)).save(out, "PNG")  # 64 megapixels in a few kilobytes
    resp = upload(logged_in, open_editor(logged_in), out.getvalue(), name="bomb.png")
    assert resp.status_code == 413 and "megapixels" in resp.get_json()["error"]
    assert not (emails_dir / "images" / "bomb.png").exists()


def test_emails_check_names_a_missing_picture_with_did_you_mean(app, emails_dir):
    path = emails_dir / STEP_FILE
    path.write_text(path.read_text() + "\n![The start position](images/strech-1-start.svg)\n")
    [problem] = [p for p in run_check(app) if "strech" in p.message]
    assert problem.level == "error"
    assert "image 'images/strech-1-start.svg' does not exist (did you mean " \
           "'images/stretch-1-start.svg'?)" in problem.message
