"""Where tests keep what a person should look at afterwards (screenshots, PDFs)."""

from __future__ import annotations

import os
from pathlib import Path

from funnel.config import PROJECT_ROOT


def artefact_dir() -> Path:
    """``FUNNEL_TEST_ARTEFACTS`` or ``test-artefacts/`` in the checkout."""
    path = Path(os.environ.get("FUNNEL_TEST_ARTEFACTS") or PROJECT_ROOT / "test-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
