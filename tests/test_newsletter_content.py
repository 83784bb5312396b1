"""The shipped newsletter content: the example issue in our own words, the plan's
closing next step, and pages that promise the cadence the plan really has."""

from __future__ import annotations

import re

from funnel.config import PROJECT_ROOT
from funnel.core.broadcast import read_broadcast
from funnel.core.sequence import load_sequence
from funnel.newsletter.cadence import cadence
from tests.external import SEED_ARTICLE, require
from tests.newsletter_support import copy_emails

EMAILS = PROJECT_ROOT / "emails"


def words(t: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", t.lower())


def runs(w: list[str], n: int = 7) -> set[tuple[str, ...]]:
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def test_first_issue_uses_the_articles_facts_in_our_own_words():
    item = read_broadcast(EMAILS, "first-issue")
    assert item is not None and item.archive
    text = item.source.body.lower()
    for fact in ("flexion", "adduction", "rotation", "glute", "biceps femoris",
                 "quadratus lumborum", "two or three times a day", "two to three weeks",
                 "under your body and across", "iliotibial band"):
        assert fact in text, fact
    copied = runs(words(item.source.body)) & runs(words(require(SEED_ARTICLE).read_text()))
    assert not copied, f"copied from the article: {copied}"


def test_a_copied_run_would_be_caught():  # negative control for the test above
    seed = require(SEED_ARTICLE).read_text()
    sentence = "this exercise specifically targets tightness in the Glute complex"
    assert sentence.lower() in seed.lower()
    assert runs(words(sentence)) & runs(words(seed))


def test_the_plan_ends_with_the_marketers_next_step():
    last = load_sequence(EMAILS).steps[-1]
    assert last.source.body.rstrip().endswith("{{ next_step }}")
    assert (EMAILS / "next-step.md").read_text().startswith("## What comes next")


def test_next_step_is_checked(app_config, tmp_path):
    from funnel import create_app

    emails = copy_emails(tmp_path / "emails-copy")
    app = create_app({**app_config, "EMAILS_DIR": str(emails)})
    runner = app.test_cli_runner()
    (emails / "next-step.md").write_text("See [the archive]({{ site_url }}newsleter) "
                                         "{{ preferences_link }}\n")
    result = runner.invoke(args=["emails", "check"])
    assert result.exit_code == 1
    assert "next-step.md:1: error: unknown variable 'preferences_link'" in result.output
    assert "next-step.md:1: error: link to '/newsleter' on our site: there is no such page" \
        in result.output


def test_pages_promise_the_real_cadence(client, outbox):
    from tests.conftest import sign_up_and_confirm

    c = cadence(load_sequence(EMAILS))
    assert (c.emails, c.weeks) == (8, 6)
    for path in ("/free-plan",):
        page = re.sub(r"\s+", " ", client.get(path).get_data(as_text=True))
        assert "8 emails over 6 weeks: the first straight away" in page
        assert "newsletter" in page
        assert "two or three" not in page.lower()
    welcome = re.sub(r"\s+", " ", sign_up_and_confirm(client, outbox, "new@example.com")
                     .get_data(as_text=True))
    assert ("The plan is 8 emails over 6 weeks: the first straight away, then one every 3 "
            "to 8 days (about one a week), in the daytime your time, then an occasional "
            "newsletter") in welcome
    assert "two or three" not in welcome.lower()


def test_cadence_follows_the_sequence(tmp_path):
    emails = copy_emails(tmp_path / "emails")
    for p in sorted((emails / "sequences" / "plan").glob("*.md"))[4:]:
        p.unlink()
    c = cadence(load_sequence(emails))
    assert c.emails == 4 and c.weeks == 2
    assert c.plan == "4 emails over 2 weeks: the first straight away, then one every 3 to 7 days (about one a week)"
