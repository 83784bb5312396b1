"""Cross-origin protection for the public sign-up form, as Go 1.25's
``net/http.CrossOriginProtection`` does it, in place of a per-visitor CSRF token.

A browser says where a request comes from, and a page cannot forge it:
``Sec-Fetch-Site`` (every current browser) and ``Origin`` (older ones too). So a
POST is refused when:

- ``Sec-Fetch-Site`` is present and is neither ``same-origin`` nor ``none``
  (a typed URL or bookmark), unless its ``Origin`` is one of ``EMBED_ORIGINS``;
- else, ``Origin`` is present and names another host than this request's,
  unless it is one of ``EMBED_ORIGINS`` (or ``FUNNEL_BASE_URL``'s own).

A client sending neither header is not a browser: it is not acting with a
visitor's cookies on someone else's behalf, and a token would not stop it
either (it could fetch one). With no token in it, the landing page is the same
bytes for everyone, so it can be cached (docs/pages.md).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Request, current_app, request


def normalise_origin(value: str | None) -> str | None:
    """scheme://host[:port] in lower case without a default port, or None."""
    if not value or value == "null":
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins() -> frozenset[str]:
    """``EMBED_ORIGINS``, ``FUNNEL_BASE_URL``'s origin and this request's own."""
    listed = current_app.config.get("EMBED_ORIGINS") or []
    if isinstance(listed, str):
        listed = listed.split(",")
    found = {normalise_origin(o) for o in listed}
    found.add(normalise_origin(current_app.config["FUNNEL_BASE_URL"]))
    found.add(normalise_origin(request.host_url))
    return frozenset(o for o in found if o)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED = ("This form can only be sent from the Run Stronger site itself. If you "
           "followed a link from another site, open the free plan page and sign up there.")


def refused(request: Request,
            trusted: frozenset[str] | Callable[[], frozenset[str]]) -> bool:
    """True when ``request`` is a browser's cross-origin POST from an origin not in
    ``trusted`` (origins as ``normalise_origin`` writes them; or a function giving
    them, called only when a request's origin is to be looked up)."""
    if request.method in SAFE_METHODS:
        return False
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site in ("same-origin", "none"):
            return False
        return normalise_origin(origin) not in _origins(trusted)
    if origin is None:
        return False  # neither header: not a browser
    try:
        if urlsplit(origin).netloc.lower() == request.host.lower():
            return False
    except ValueError:
        return True
    return normalise_origin(origin) not in _origins(trusted)


def _origins(trusted: frozenset[str] | Callable[[], frozenset[str]]) -> frozenset[str]:
    return trusted() if callable(trusted) else trusted
