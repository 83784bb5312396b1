"""Helpers for the newsletter tests: subscribers made directly, a broadcast file, the worker."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from funnel.config import PROJECT_ROOT
from funnel.models import Subscriber

REAL_EMAILS = PROJECT_ROOT / "emails"


def copy_emails(target: Path) -> Path:
    shutil.copytree(REAL_EMAILS, target)
    return target


def add(db, email: str, *, status: str = "confirmed", now: datetime, tz: str = "Europe/London",
        first_name: str = "", **fields) -> Subscriber:
    """A subscriber as the list would hold them (no drip due, so only broadcasts move)."""
    sub = Subscriber(email=email, first_name=first_name or None, status=status, timezone=tz,
                     created_at=fields.pop("created_at", now - timedelta(days=60)),
                     confirmed_at=None if status == "pending" else now - timedelta(days=59),
                     **fields)
    db.add(sub)
    db.commit()
    return sub


def write_broadcast(emails_dir: Path, slug: str, body: str = "Hi {{ first_name }},\n\nNews.\n",
                    subject: str = "Run Stronger news", **meta) -> Path:
    path = emails_dir / "broadcasts" / f"{slug}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{k}: {v}\n" for k, v in meta.items())
    path.write_text(f"---\nslug: {slug}\nsubject: \"{subject}\"\n"
                    f"preheader: \"One idea for your next run.\"\n{extra}---\n{body}")
    return path


def run_worker(runner) -> str:
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output



def quiet_plan(db, emails_dir: Path) -> None:
    """Tell the workers the sequence is already planned for, so the people made with
    ``add`` get no plan email and only broadcasts move."""
    from funnel.core.sequences import load_sequences
    from funnel.drip.store import FINGERPRINT_KEY
    from funnel.models import AppState

    db.merge(AppState(key=FINGERPRINT_KEY, value=load_sequences(emails_dir).fingerprint))
    db.commit()
