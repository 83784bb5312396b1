"""Batched mail composed from the shared body, without rendering each recipient,
is byte for byte the recipient's own full rendering, or is rendered in full."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from funnel.config import Settings, defaults
from funnel.core.sequence import read_email_file
from funnel.mail.compose import Composer
from funnel.mail.shared_body import apply_substitutions
from funnel.models import Subscriber
from tests.drip import make_emails_dir

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOSTILE_NAMES = ["Sam", None, "O'Brien", "Zoë", "Dev & Co", "a*b*_c_", "Łukasz", " x",
                 "1. [x](y)", "<b>bold</b>", "Ann  Lee", "\\*", "=== ", "&amp;", "x" * 80]


def composer_for(tmp_path: Path, body: str) -> tuple[Composer, object]:
    emails = make_emails_dir(tmp_path / "emails")
    path = emails / "sequence" / "09-test.md"
    path.write_text(f"---\nslug: test\nsubject: \"Hi {{{{ first_name }}}}\"\n"
                    f"preheader: \"For {{{{ first_name }}}}\"\ndelay: 1 day\n---\n{body}")
    config = {**defaults("/nonexistent"), "SECRET_KEY": "s", "FUNNEL_BASE_URL": "https://x.example",
              "EMAILS_DIR": str(emails)}
    return Composer(Settings.from_config(config), lambda: NOW), read_email_file(path)


def check_everyone(composer: Composer, source) -> int:
    """Every recipient's message equals their full rendering; returns how many
    were batched (had a shared body)."""
    batched = 0
    for i, name in enumerate(HOSTILE_NAMES * 2):
        sub = Subscriber(public_id=f"p{i}-_a_-", email=f"r_{i}_@ex-_a_-.com", first_name=name)
        msg = composer.message(source, sub, key=f"k{i}", now=NOW, delivery_id=f"d{i}")
        full = composer.renderer.render(source, composer.variables(sub, f"d{i}"))
        assert (msg.subject, msg.html, msg.text) == (full.subject, full.html, full.text), name
        if msg.shared is not None:
            batched += 1
            assert apply_substitutions(msg.shared.html, msg.substitutions) == msg.html
            assert apply_substitutions(msg.shared.text, msg.substitutions) == msg.text
    return batched


def fast_templates(composer: Composer) -> list:
    return [t.fast for t in composer.shared._cache.values() if t is not None and t.fast]


def test_hostile_names_come_out_exactly_as_rendered(tmp_path):
    composer, source = composer_for(
        tmp_path, "Hi {{ first_name }}, **well done** {{ first_name }}.\n\n"
                  "[Your plan]({{ my_plan_url }}) · [Leave]({{ unsubscribe_url }})\n")
    assert check_everyone(composer, source) > len(HOSTILE_NAMES)
    fast = fast_templates(composer)
    assert any(f.verified for f in fast) and not any(f.broken for f in fast)


def test_a_template_that_looks_at_the_name_is_rendered_for_everyone(tmp_path):
    # "there" gets other words: no shared body could give both, so no shortcut.
    composer, source = composer_for(
        tmp_path, "{% if first_name == 'there' %}Hello friend{% else %}Hi {{ first_name }}"
                  "{% endif %}\n")
    check_everyone(composer, source)
    assert not fast_templates(composer)


@pytest.mark.parametrize("body", [
    "Copy this link: {{ unsubscribe_url }} _or_ not\n",  # a link in Markdown text
    "{{ first_name|upper }} and {{ first_name }}\n",     # a filter on a personal value
])
def test_values_that_could_meet_their_neighbours_are_still_exact(tmp_path, body):
    composer, source = composer_for(tmp_path, body)
    check_everyone(composer, source)


def test_a_link_printed_many_times_goes_once_per_recipient(tmp_path):
    # The substitutions are most of a batched request's JSON: a link the email
    # and its layout print in several places, HTML and text, is sent once.
    composer, source = composer_for(
        tmp_path, "[Leave]({{ unsubscribe_url }}) or paste {{ unsubscribe_url }}\n\n"
                  "[Plan]({{ my_plan_url }}), [again]({{ my_plan_url }})\n")
    assert check_everyone(composer, source) > len(HOSTILE_NAMES)
    sub = Subscriber(public_id="p-once", email="once@example.com", first_name="Sam")
    msg = composer.message(source, sub, key="k", now=NOW, delivery_id="d")
    links = composer.variables(sub, "d")
    assert msg.shared is not None and msg.substitutions is not None
    assert msg.html.count(links["unsubscribe_url"]) + msg.text.count(links["unsubscribe_url"]) > 2
    values = list(msg.substitutions.values())
    assert values.count(links["unsubscribe_url"]) == 1
    assert values.count(links["my_plan_url"]) == 1


def test_a_step_composed_for_many_at_once_is_each_recipients_own_email(tmp_path):
    """What the worker does with a batch (``Composer.messages``): every email is
    the one composed alone, and so byte for byte its full rendering; a recipient
    that cannot be composed is reported in its place and the others still go."""
    composer, source = composer_for(
        tmp_path, "Hi {{ first_name }}. [Plan]({{ my_plan_url }}) · [View]({{ view_url }}) · "
                  "[Leave]({{ unsubscribe_url }})\n")
    subs = [Subscriber(public_id=f"p{i}-_a_-", email=f"r_{i}_@ex.com", first_name=name)
            for i, name in enumerate(HOSTILE_NAMES)]

    class Broken:
        public_id, email = "p-broken", "broken@example.com"  # and no first_name

    recipients = [(sub, f"k{i}", f"d{i}") for i, sub in enumerate(subs)]
    recipients.insert(3, (Broken(), "k-broken", "d-broken"))
    out = composer.messages(source, recipients, now=NOW, category="test")
    assert isinstance(out.pop(3), AttributeError)
    assert len(out) == len(subs)
    for i, (sub, msg) in enumerate(zip(subs, out, strict=True)):
        assert not isinstance(msg, Exception)
        alone = composer.message(source, sub, key=f"k{i}", now=NOW, delivery_id=f"d{i}",
                                 category="test")
        assert msg == alone, sub.first_name
        full = composer.renderer.render(source, composer.variables(sub, f"d{i}"))
        assert (msg.subject, msg.html, msg.text) == (full.subject, full.html, full.text)
        assert msg.headers["List-Unsubscribe"] == f"<{composer.variables(sub)['unsubscribe_url']}>"
    assert sum(m.shared is not None for m in out if not isinstance(m, Exception)) > 1
