"""EMAILS_DIR on first start: filled from the emails shipped with the code.

In production the emails live outside the code (``/var/lib/funnel/emails``, see
deploy/), so an upgrade of the code never overwrites what the coach wrote in the
browser. The web service fills it on its first start; a worker that cannot write
there says so instead of sending from an empty folder.
"""

from __future__ import annotations

from pathlib import Path

from funnel.config import ConfigError
from funnel.studio.files import fill_emails_dir


def ensure_emails_dir(emails_dir: str | Path, shipped: str | Path) -> bool:
    """True if the shipped emails were copied in now."""
    try:
        return fill_emails_dir(emails_dir, shipped)
    except OSError as exc:
        raise ConfigError(
            f"EMAILS_DIR {emails_dir} is empty and cannot be filled from {shipped} ({exc}). "
            "Start funnel-web first (it fills the folder on its first start), or copy the "
            "shipped emails/ folder there yourself.") from exc
