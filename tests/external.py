"""Files from outside this repository that some tests compare against.

SendGrid's own OpenAPI contract and the coach's seed article are not copied in:
on a bare clone those tests skip with one line saying what is missing. CI sets
FUNNEL_REQUIRE_SHARED=1, which turns that skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"

SENDGRID_CONTRACT = ("FUNNEL_SENDGRID_CONTRACT", SHARED / "sendgrid" / "tsg_mail_v3.json",
                     "SendGrid's OpenAPI contract (tsg_mail_v3.json)")
SEED_ARTICLE = ("FUNNEL_SEED_ARTICLE", SHARED / "seed" / "lateral-hip-stretch-article.txt",
                "the coach's seed article")


def configured(spec: tuple[str, Path, str]) -> Path:
    """Where the file is looked for: the environment variable, else ../shared/…"""
    variable, default, _what = spec
    return Path(os.environ.get(variable) or default)


def require(spec: tuple[str, Path, str]) -> Path:
    """The file's path; skips (or, in CI, fails) the test when it is not there."""
    variable, _default, what = spec
    path = configured(spec)
    if path.is_file():
        return path
    message = f"{what} not found at {path}: set {variable} to its path"
    if os.environ.get("FUNNEL_REQUIRE_SHARED") == "1":
        pytest.fail(message + " (FUNNEL_REQUIRE_SHARED=1)")
    pytest.skip(message)
