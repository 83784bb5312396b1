"""``emails check`` knows the inbox: long subjects, a missing preheader, an HTML body
Gmail would clip, a picture without alt text, and links the plain text leaves out."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from funnel.config import PROJECT_ROOT
from funnel.mail.inbox import HTML_MAX_BYTES, inbox_problems
from tests.test_emails import run_cli

EMAILS = PROJECT_ROOT / "emails"
FIRST = "sequences/plan/01-stretch.md"


@pytest.fixture
def emails_copy(tmp_path) -> Path:
    return Path(shutil.copytree(EMAILS, tmp_path / "emails"))


def check(tmp_path: Path, emails: Path) -> str:
    result = run_cli(tmp_path, emails, "emails", "check")
    return result.output


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def test_the_real_emails_have_nothing_to_warn_about(tmp_path, emails_copy):
    assert "0 error(s), 0 warning(s)" in check(tmp_path, emails_copy)


def test_a_subject_over_150_characters(tmp_path, emails_copy):
    long = "Part 1: " + "a very long subject that goes on " * 5
    assert len(long) > 150
    edit(emails_copy / FIRST, '"Part 1: the lateral hip and low back stretch"', f'"{long}"')
    out = check(tmp_path, emails_copy)
    assert re.search(rf"01-stretch.md:3: error: the subject is {len(long.strip())} characters", out)


def test_a_missing_preheader(tmp_path, emails_copy):
    path = emails_copy / FIRST
    path.write_text(re.sub(r"(?m)^preheader:.*\n", "", path.read_text()))
    assert "01-stretch.md:1: warning: no preheader" in check(tmp_path, emails_copy)


def test_an_html_body_gmail_would_clip(tmp_path, emails_copy):
    path = emails_copy / FIRST
    path.write_text(path.read_text() + "\n" + ("Easy miles build the base. " * 40 + "\n\n") * 110)
    out = check(tmp_path, emails_copy)
    assert re.search(r"01-stretch.md:\d+: warning: the HTML is 1\d\d KB: Gmail clips", out)


def test_a_picture_without_alt_text_in_the_layout(tmp_path, emails_copy):
    edit(emails_copy / "layout" / "base.html", "<body>",
         '<body><img src="https://cdn.example.com/logo.png">')
    out = check(tmp_path, emails_copy)
    assert "warning: a picture (https://cdn.example.com/logo.png) has no alt text" in out


def test_a_plain_text_part_that_leaves_out_a_link(tmp_path, emails_copy):
    edit(emails_copy / "layout" / "base.txt", "Unsubscribe: {{ unsubscribe_url }}\n", "")
    out = check(tmp_path, emails_copy)
    assert re.search(r"warning: the plain-text part leaves out 1 link\(s\) the HTML has "
                     r"\(https?://[^)]*/unsubscribe/", out), out


def test_the_rules_on_their_own():
    html = ('<p><a href="https://a.example/x?y=1&amp;z=2">one</a> <a href="mailto:c@d.e">m</a>'
            '<img src="p.png" alt=""><img src="q.png" alt="Q"><img src="r.png" role="presentation"></p>')
    problems = inbox_problems(html, "one: https://a.example/x?y=1&z=2")
    assert problems == ["a picture (p.png) has no alt text: readers with pictures off see nothing "
                        "in its place"]
    assert inbox_problems("x" * HTML_MAX_BYTES, "") == []
    assert "KB" in inbox_problems("x" * (HTML_MAX_BYTES + 1), "")[0]
