"""A picture uploaded from a page that writes an email: the editor
(``/admin/emails/<slug>/edit``) and the new-newsletter page (``/admin/broadcasts/new``)
share the size limits, the reading of the form's ``picture`` and ``alt`` fields and
the words said about it. The checking and the re-encoding are the studio's
(``funnel.studio.images``); the panel is ``templates/admin/_picture_upload.html``
and its script ``static/studio/editor.js``.
"""

from __future__ import annotations

from flask import request

from funnel.studio.images import MAX_UPLOAD_BYTES, SavedPicture
from funnel.studio.service import Studio

# Room for the form around a 1 MB text or a 5 MB picture: the studio refuses more with
# its own message; beyond these the request is cut off (413, ``too_large``).
TEXT_BODY_MAX = 2 * 1024 * 1024
UPLOAD_BODY_MAX = MAX_UPLOAD_BYTES + TEXT_BODY_MAX


def allow_upload() -> None:
    """Raise this request's limits from the app's 1 MB. Called from a URL value
    preprocessor: those run before CSRF protection reads the form."""
    request.max_content_length = UPLOAD_BODY_MAX
    request.max_form_memory_size = TEXT_BODY_MAX


def too_large(page: str) -> str:
    return (f"That was more than {page} takes: an email's text is at most 1 MB and "
            "a picture at most 5 MB. Nothing was saved.")


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def save_from_form(studio: Studio) -> SavedPicture:
    """The form's picture, checked and stored; raises ``StudioError`` saying why not."""
    upload = request.files.get("picture")
    return studio.save_picture(upload.filename or "" if upload else "",
                               upload.read() if upload else b"", request.form.get("alt", ""))


def saved_words(saved: SavedPicture) -> str:
    return f"Picture saved as images/{saved.name}"
