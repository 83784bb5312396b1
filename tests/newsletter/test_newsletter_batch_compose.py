"""The newsletter composes a batch's emails together (the shared body worked out
once, as the plan's step does): each reader still gets exactly the email the plain
path makes for them alone, with the shortcut turned off (FAST_COMPOSE=0)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from funnel.mail.compose import Composer
from funnel.mail.shared_body import apply_substitutions
from funnel.models import Broadcast, Delivery, Subscriber
from funnel.newsletter.scheduling import REASON, frozen_source
from funnel.runtime import make_worker
from funnel.transports import SendResult
from tests.newsletter_support import add

# Names that escape differently in HTML, Markdown and text, or change the Markdown.
NAMES = ["Ann", None, "O'Brien", "Zoë", "Dev & Co", "a*b*_c_", "Łukasz", "1. [x](y)",
         "<b>bold</b>", "Ann  Lee", "\\*", "&amp;", "# Head", "x" * 80]


class Recording:
    """A provider that batches like SendGrid and keeps what it was handed."""

    idempotent = True
    max_batch = 1000

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, messages):
        self.sent.extend(messages)
        return [SendResult(m.key, True, f"id-{m.key}") for m in messages]


def test_each_reader_gets_what_the_plain_path_makes_for_them(app, runner, db, clock):
    for i, name in enumerate(NAMES * 3):
        add(db, f"reader{i}@example.com", now=clock.now, first_name=name or "")
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    rt = app.extensions["funnel"]
    provider = Recording()
    make_worker(rt, transport=provider).run_pass(clock.now)
    assert len(provider.sent) == len(NAMES) * 3
    # The shortcut was taken: most readers were composed from one shared body.
    assert sum(m.shared is not None for m in provider.sent) > len(NAMES)

    plain = Composer(replace(rt.settings, fast_compose=False), rt.clock)
    db.rollback()
    row = db.scalar(select(Broadcast).where(Broadcast.slug == "first-issue"))
    source = frozen_source(row, rt.settings.emails_dir)
    for msg in provider.sent:
        d = db.scalar(select(Delivery).where(Delivery.public_id == msg.delivery_id))
        sub = db.get(Subscriber, d.subscriber_id)
        alone = plain.message(source, sub, key=msg.key, now=msg.date, delivery_id=d.public_id,
                              category=row.slug, extra={"reason": REASON})
        # The same email; only how it is cut into a shared body and substitutions may
        # differ (the shortcut gives a link printed several times one substitution).
        assert replace(msg, shared=None, substitutions=None) == replace(
            alone, shared=None, substitutions=None), sub.first_name
        if msg.shared is not None:
            assert apply_substitutions(msg.shared.html, msg.substitutions) == msg.html
            assert apply_substitutions(msg.shared.text, msg.substitutions) == msg.text
        full = plain.render(source, sub, d.public_id, {"reason": REASON})
        assert (msg.subject, msg.html, msg.text) == (full.subject, full.html, full.text)
