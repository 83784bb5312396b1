"""SpamAssassin (local tests only) scores every email, exactly as a subscriber
receives it, below 1.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from funnel.mail.check import sample_subscriber
from funnel.transports.outbox import eml_bytes
from tests.test_emails import ALL_SLUGS, EMAILS, composer, source

# SpamAssassin scores every email (about a minute): not in `make test-fast`, always in `make test`.
pytestmark = pytest.mark.slow

SPAMASSASSIN = "/usr/bin/spamassassin"
LIMIT = 1.0
SCORE = re.compile(r"^X-Spam-Status: \w+, score=(-?\d+(?:\.\d+)?)", re.MULTILINE)
RULES = re.compile(r"^\s*(-?\d+\.\d+) (\w+)", re.MULTILINE)


def raw_message(slug: str, emails_dir: Path = EMAILS) -> bytes:
    """The .eml a subscriber gets: production-style https links, all headers."""
    c = composer("https://runstronger.example", emails_dir)
    system = slug == "confirm"
    msg = c.message(source(slug, emails_dir), sample_subscriber(), key=f"20261201T0900-{slug}",
                    now=datetime(2026, 12, 1, 9, tzinfo=UTC),
                    delivery_id=None if system else "d-1", list_mail=not system)
    return eml_bytes(msg)


def spam_score(raw: bytes, home: Path) -> tuple[float, str]:
    # -L: local tests only (no DNS, no network); no Bayes, so the score is the same
    # on every machine; a private home so nothing is written to the real one.
    proc = subprocess.run(
        [SPAMASSASSIN, "-L", "-t", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0",
         "--cf=use_auto_whitelist 0"],
        input=raw, capture_output=True, timeout=120, check=False,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    out = proc.stdout.decode("utf-8", "replace")
    m = SCORE.search(out)
    assert m, f"no score from spamassassin (exit {proc.returncode}): {proc.stderr[-500:]!r}"
    report = out[out.find("Content analysis details"):]
    return float(m.group(1)), "\n".join(
        f"{pts} {rule}" for pts, rule in RULES.findall(report) if float(pts) != 0)


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict[str, tuple[float, str]]:
    """Every email scored once, in parallel (SpamAssassin takes a second or so each)."""
    home = tmp_path_factory.mktemp("sa-home")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda slug: spam_score(raw_message(slug), home), ALL_SLUGS)
        return dict(zip(ALL_SLUGS, results))


@pytest.mark.parametrize("slug", ALL_SLUGS)
def test_email_scores_below_one(scores, slug):
    score, rules = scores[slug]
    assert score < LIMIT, f"{slug} scores {score}:\n{rules}"


def test_spammy_copy_is_caught(tmp_path):
    """The same pipeline with shouty copy goes over the limit, so a pass means something."""
    emails = Path(shutil.copytree(EMAILS, tmp_path / "emails"))
    path = emails / "sequences" / "plan" / "02-hip-mobility.md"
    text = re.sub(r"^subject:.*$", 'subject: "FREE!!! 100% GUARANTEED RESULTS, ACT NOW"',
                  path.read_text(), flags=re.MULTILINE)
    path.write_text(text + "\n100% GUARANTEED!!! Risk free, no credit check, lose weight "
                           "fast. Order now!\n")
    score, rules = spam_score(raw_message("hip-mobility", emails), tmp_path)
    assert score >= LIMIT, rules
