"""A test send of one email to one address, whose every link leads somewhere real.

A test goes to the sample reader (``public_id`` "preview"), who is not on the
list. Its links are signed for that reader, and the subscriber pages answer
them with a page saying "this was a test send" (``funnel.web.test_links``);
the view-in-browser link carries the email's slug, so it shows the email as the
file reads now.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime

from funnel.core.sequence import EmailSource
from funnel.mail.check import sample_subscriber
from funnel.newsletter.scheduling import REASON
from funnel.transports import Message

TEST_PREFIX = "[TEST] "
TEST_READER = "preview"  # the sample reader's public_id: never a real subscriber's


def test_message(composer, src: EmailSource, address: str, now: datetime, *,
                 broadcast: bool, subject: str | None = None) -> Message:
    """The email as a reader would get it, addressed to ``address`` with [TEST] in front.

    Raises jinja2.TemplateError if it does not render."""
    sample = sample_subscriber()
    extra = None
    if broadcast:
        extra = {"reason": REASON, "view_url": composer.links.view(TEST_READER, src.slug)}
    elif src.path.parent.name != "system":
        extra = {"view_url": composer.links.view(TEST_READER, src.slug)}
    msg = composer.message(src, sample, key=f"{now:%Y%m%dT%H%M%S}-test-{src.slug}-"
                           f"{secrets.token_hex(4)}", now=now,
                           list_mail=src.path.parent.name != "system", extra=extra)
    return dataclasses.replace(msg, to=address, to_name=None,
                               subject=TEST_PREFIX + (subject or msg.subject))
