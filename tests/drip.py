"""A small drip sequence the tests control, next to a copy of the real layout."""

from __future__ import annotations

import shutil
from pathlib import Path

from funnel.config import PROJECT_ROOT

STEPS = {
    "01-welcome.md": ("welcome", "0", "any"),
    "02-mobility.md": ("mobility", "2 days", None),
    "03-strength.md": ("strength", "3 days", None),
}


def write_step(folder: Path, name: str, slug: str, delay: str, window: str | None) -> None:
    extra = f"window: {window}\n" if window else ""
    (folder / name).write_text(
        f"---\nslug: {slug}\nsubject: \"Step {slug}\"\npreheader: \"About {slug}\"\n"
        f"delay: {delay}\n{extra}---\nHi {{{{ first_name }}}}, this is {slug}.\n\n"
        f"[The site]({{{{ site_url }}}})\n"
    )


def make_emails_dir(root: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "emails" / "layout", root / "layout")
    shutil.copytree(PROJECT_ROOT / "emails" / "system", root / "system")
    (root / "sequence").mkdir()
    for name, (slug, delay, window) in STEPS.items():
        write_step(root / "sequence", name, slug, delay, window)
    return root
