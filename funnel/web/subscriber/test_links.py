"""The answers to the links in a test send (``funnel.newsletter.test_send``).

A test copy is signed for the sample reader, who is not on the list, so the
usual pages would say "not found" or "invalid link". These pages say instead
what the link does in the real email, with 200, and change nothing.
"""

from __future__ import annotations

from flask import render_template

from funnel import runtime
from funnel.core.tokens import BadToken
from funnel.mail import check as emailcheck
from funnel.mail.check_support import find_source
from funnel.newsletter.scheduling import REASON
from funnel.newsletter.test_send import TEST_READER
from funnel.web.errors import render_error

WHAT_IT_DOES = {
    "unsubscribe": "takes the reader off the list with one click",
    "preferences": "opens the reader's own page: pause, topics, time zone, their data",
}


def is_test(token: str, purpose: str) -> bool:
    """Whether ``token`` is a good signature for the sample reader of a test send."""
    try:
        payload = runtime.rt().composer.tokens.load(purpose, token)
    except BadToken:
        return False
    if isinstance(payload, list) and payload:
        payload = payload[0]
    return payload == TEST_READER


def test_page(purpose: str):
    return render_template("test_send.html", what=purpose,
                           what_it_does=WHAT_IT_DOES.get(purpose, "leads the reader on")), 200


def test_view(token: str):
    """The view-in-browser link of a test: the email as its file reads now."""
    r = runtime.rt()
    try:
        _reader, slug = r.composer.tokens.load("view", token)
    except (BadToken, ValueError, TypeError):
        return render_error(400)
    src = find_source(r.settings.emails_dir, str(slug))
    if src is None:
        return render_error(404, "This test email's file has been removed or renamed since.")
    extra = {"reason": REASON} if src.path.parent.name == "broadcasts" else None
    rendered = r.composer.render(src, emailcheck.sample_subscriber(), "preview", extra=extra)
    return rendered.html, 200, {"X-Robots-Tag": "noindex"}
