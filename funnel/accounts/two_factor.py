"""Two-factor sign-in for admin accounts: TOTP (RFC 6238, what authenticator apps
speak) and one-time recovery codes. No Flask in here; ``funnel.web.admin.two_factor``
is the pages.

The TOTP secret is stored encrypted (Fernet, key from SECRET_KEY by HKDF, with its
own context string). A code is accepted for the current 30-second step or the one
on either side (clock drift), and never twice: the last step used is kept.
Recovery codes are shown once; only their SHA-256 hashes are kept (they are
random, 50 bits each, so a plain hash is enough), and each works once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

import pyotp
import segno

from funnel.hooks.secret_box import SecretBox
from funnel.models import AdminUser

ISSUER = "Run Stronger admin"
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def box(secret_keys: Sequence[str]) -> SecretBox:
    return SecretBox(secret_keys, info=b"funnel admin totp secrets v1")


def start_enrolment(admin: AdminUser, keys: SecretBox) -> str:
    """A new secret for ``admin`` (not yet in force); the plain secret."""
    secret = pyotp.random_base32()
    admin.totp_secret = keys.seal(secret)
    admin.totp_enabled_at = None
    return secret


def pending_secret(admin: AdminUser, keys: SecretBox) -> str | None:
    return keys.open(admin.totp_secret) if admin.totp_secret else None


def qr_data_uri(admin: AdminUser, secret: str) -> str:
    """The otpauth:// link as a QR code, an SVG data URI for an <img> (no script,
    nothing fetched: the page's CSP allows data: images)."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=admin.email, issuer_name=ISSUER)
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _normal(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def check_code(admin: AdminUser, keys: SecretBox, code: str, now: datetime) -> bool:
    """A current authenticator code, not used before; records its step."""
    digits = _normal(code)
    if not admin.totp_secret or len(digits) != 6 or not digits.isdigit():
        return False
    totp = pyotp.TOTP(keys.open(admin.totp_secret))
    step = int(now.timestamp()) // totp.interval
    for candidate in (step - 1, step, step + 1):
        if candidate <= (admin.totp_last_step or -1):
            continue  # a code works once, even within its 90 seconds
        if hmac.compare_digest(totp.at(candidate * totp.interval), digits):
            admin.totp_last_step = candidate
            return True
    return False


def finish_enrolment(admin: AdminUser, keys: SecretBox, code: str, now: datetime
                     ) -> list[str] | None:
    """Turn two-factor on when ``code`` proves the app has the secret; the recovery
    codes to show once, or None for a wrong code."""
    if not check_code(admin, keys, code, now):
        return None
    admin.totp_enabled_at = now
    codes = ["-".join(("".join(secrets.choice(_ALPHABET) for _ in range(5)),
                       "".join(secrets.choice(_ALPHABET) for _ in range(5))))
             for _ in range(RECOVERY_CODES)]
    admin.recovery_hashes = " ".join(_hash(c) for c in codes)
    # New codes end every session made before (the caller raises the version).
    return codes


def _hash(code: str) -> str:
    return hashlib.sha256(_normal(code).encode()).hexdigest()


def use_recovery_code(admin: AdminUser, code: str) -> bool:
    """A recovery code not used before; it is struck off."""
    left = (admin.recovery_hashes or "").split()
    wanted = _hash(code)
    for h in left:
        if hmac.compare_digest(h, wanted):
            left.remove(h)
            admin.recovery_hashes = " ".join(left)
            return True
    return False


def recovery_left(admin: AdminUser) -> int:
    return len((admin.recovery_hashes or "").split())


def enabled(admin: AdminUser) -> bool:
    return admin.totp_enabled_at is not None
