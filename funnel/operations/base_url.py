"""One base URL for every process started in the project folder.

``flask serve`` (what ``make run`` starts) records the address it serves under in
``instance/base_url``. A process whose environment has no FUNNEL_BASE_URL reads it
from there, so a worker or ``broadcast send`` in a second terminal writes links
that open on the running site, without anyone exporting anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_NAME = "base_url"


def served_url(host: str, port: int) -> str:
    """The address a browser on this machine uses for a server bound to host:port."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"  # every interface: this machine's own address works
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def recorded(instance_path: str) -> str | None:
    """The base URL the last ``flask serve`` in this folder recorded, if any."""
    try:
        text = (Path(instance_path) / FILE_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text.rstrip("/") if text.startswith(("http://", "https://")) else None


def record(instance_path: str, url: str) -> Path:
    """Write ``url`` whole (a reader never sees half a line)."""
    path = Path(instance_path) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".base_url.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(url.rstrip("/") + "\n")
    os.replace(tmp, path)
    return path


def mismatch_warning(own: str, instance_path: str) -> str | None:
    """What to tell the user when this process writes links to another address
    than the one the site was last served under."""
    served = recorded(instance_path)
    if served is None or served == own.rstrip("/"):
        return None
    return (f"warning: this process writes links to {own}, but the site here was last "
            f"served at {served} (instance/{FILE_NAME}); links in its emails may not open. "
            f"Unset FUNNEL_BASE_URL, or set it to the site's address.")
