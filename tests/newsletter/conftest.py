"""Fixtures for the broadcast tests: each test gets its own copy of emails/, and the
plan counts as already planned for, so the people made with ``add`` get no plan
email and only broadcasts move. The helpers are in ``tests/newsletter_support.py``."""

from __future__ import annotations

import pytest

from tests.newsletter_support import copy_emails, quiet_plan


@pytest.fixture
def emails_dir(tmp_path):
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


@pytest.fixture(autouse=True)
def _only_broadcasts(db, emails_dir):
    quiet_plan(db, emails_dir)
