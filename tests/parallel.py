"""What differs between pytest-xdist workers (`pytest -n 2`, `make test`).

Each worker is its own process with its own session fixtures (Prism, the browser,
the SQLite template); what lives outside the process and has a name must carry the
worker's id so two workers never share it: the PostgreSQL databases made from
FUNNEL_TEST_POSTGRES_URL. Ports are always asked of the kernel (port 0), never fixed.
"""

from __future__ import annotations

import os


def worker_id() -> str:
    """``gw0``, ``gw1``… under xdist; ``""`` in a plain run."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def database_name(base: str) -> str:
    """``base`` in a plain run, ``base_gw0`` in xdist worker gw0."""
    worker = worker_id()
    return f"{base}_{worker}" if worker else base


def is_worker(config) -> bool:  # type: ignore[no-untyped-def]
    """True in an xdist worker process (the controller and plain runs say False)."""
    return hasattr(config, "workerinput")
