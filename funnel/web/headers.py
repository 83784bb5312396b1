"""What every response tells the browser, and whom the app believes about the client.

- ``TRUSTED_PROXIES`` hops of reverse proxy in front of the app (Werkzeug's
  ProxyFix): the client address, scheme and host come from their
  ``X-Forwarded-For/-Proto/-Host`` headers (never ``-Prefix`` or ``-Port``).
  With 0 (the default) those headers are ignored, so
  nobody can claim another address by sending one.
- A Content-Security-Policy on every page: scripts only from this site or inline
  with this response's nonce (templates write ``nonce="{{ csp_nonce() }}"``); the
  public pages, the same for everyone, allow theirs by hash (``hashed_policy``).
- Pages reached through a personal link are never cached (a shared computer's
  back button must not show someone's preferences).
- In production: Secure cookies and HSTS.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from funnel.config import is_production

# Blueprints whose pages are opened from links in emails: the URL is the key.
PERSONAL_BLUEPRINTS = frozenset({"links", "preferences"})

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()" for feature in (
        "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media",
        "fullscreen", "geolocation", "gyroscope", "magnetometer", "microphone", "midi",
        "payment", "picture-in-picture", "publickey-credentials-get", "screen-wake-lock",
        "usb", "xr-spatial-tracking", "interest-cohort", "browsing-topics",
    )
)
HSTS = "max-age=31536000; includeSubDomains"


def csp_nonce() -> str:
    """This response's nonce for inline scripts, made on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


# Styles stay 'unsafe-inline': the pages and the emails shown in previews
# use style attributes, and CSS cannot run code. Scripts are what matter.
# Emails viewed in the browser may show images hosted elsewhere.
_CSP_BEFORE, _CSP_AFTER = "; ".join((
    "default-src 'self'",
    "script-src 'self' 'nonce-{}'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: https:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)).split("{}")


def content_security_policy(nonce: str | None) -> str:
    # Put together once; each response only adds its nonce (every page pays for it).
    # A page with no inline script (the article) needs none: scripts from this site only.
    if nonce is None:
        return _CSP_NO_INLINE
    return _CSP_BEFORE + nonce + _CSP_AFTER


_CSP_NO_INLINE = (_CSP_BEFORE + _CSP_AFTER).replace(" 'nonce-'", "")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def hashed_policy(html: str) -> str:
    """The policy for a page that is the same for everyone: its inline scripts
    allowed by their SHA-256 (CSP Level 2), no nonce, so page and header can be
    cached together. Only ``<script>`` with no attributes is counted: a page that
    needs another kind uses a nonce or a file."""
    hashes = sorted({"'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                     + "'" for body in _INLINE_SCRIPT.findall(html)})
    if not hashes:
        return _CSP_NO_INLINE
    return _CSP_NO_INLINE.replace("script-src 'self'", "script-src 'self' " + " ".join(hashes), 1)


def fixed_headers(production: bool) -> list[tuple[str, str]]:
    """The headers every page gets whatever it is (funnel.web.public.fastpages sends them too)."""
    fixed = [
        ("Permissions-Policy", PERMISSIONS_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if production:
        fixed.append(("Strict-Transport-Security", HSTS))
    return fixed


def init_app(app: Flask) -> None:
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops:
        # X-Forwarded-Prefix and -Port are never believed: one request carrying
        # "X-Forwarded-Prefix: //evil.example" would otherwise make the cached
        # article link to another site for everyone after it. The app is served at
        # the root, and the port is in the Host header the proxy passes on.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=0, x_prefix=0)
    production = is_production(app.config)
    if production:
        app.config["SESSION_COOKIE_SECURE"] = True
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    # The same on every page unless the view set its own; one pass over the
    # response's headers instead of a lookup per name (every page pays for it).
    fixed = fixed_headers(production)

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        present = {name.lower() for name in h.keys()}
        missing = [(k, v) for k, v in fixed if k.lower() not in present]
        if "content-security-policy" not in present:
            csp = content_security_policy(g.get("csp_nonce"))
            missing.append(("Content-Security-Policy", csp))
        else:
            csp = h["Content-Security-Policy"]
        if "frame-ancestors 'none'" in csp and "x-frame-options" not in present:
            missing.append(("X-Frame-Options", "DENY"))  # for browsers without CSP
        h.extend(missing)
        if request.blueprint in PERSONAL_BLUEPRINTS:
            h["Cache-Control"] = "no-store"
            h.setdefault("X-Robots-Tag", "noindex")
        return resp
