"""An emails folder with several sequences the tests control (issue 25)."""

from __future__ import annotations

import shutil
from pathlib import Path

from funnel.config import PROJECT_ROOT
from tests.drip import write_step

PLAN_STEPS = {
    "01-welcome.md": ("welcome", "0", "any"),
    "02-mobility.md": ("mobility", "2 days", None),
    "03-strength.md": ("strength", "3 days", None),
}
RACE_STEPS = {
    "01-race-one.md": ("race-one", "0", None),
    "02-race-two.md": ("race-two", "1 day", None),
    "03-race-three.md": ("race-three", "1 day", None),
}
RACE_CONFIG = ("title: Race week\ntopic: plan\nstart:\n  tag: race\nstop:\n  - tag: no-race\n")


def write_sequence(root: Path, name: str, config: str | None, steps: dict) -> Path:
    folder = root / "sequences" / name
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "_sequence.yml").write_text(config)
    for file, (slug, delay, window) in steps.items():
        write_step(folder, file, slug, delay, window)
    return folder


def make_sequences_dir(root: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "emails" / "layout", root / "layout")
    shutil.copytree(PROJECT_ROOT / "emails" / "system", root / "system")
    write_sequence(root, "plan", "title: The plan\ntopic: plan\nstart: confirmed\n", PLAN_STEPS)
    write_sequence(root, "race-week", RACE_CONFIG, RACE_STEPS)
    return root


def drip_sends(outbox, address: str) -> list[tuple[str, object]]:
    """(subject, Date header) of each sequence email to ``address``, in order."""
    out = []
    for msg in outbox.to(address):
        if msg["Subject"].startswith("Step "):
            out.append((msg["Subject"][5:], msg["Date"].datetime))
    return out
