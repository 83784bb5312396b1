"""Webhook signing secrets, encrypted at rest.

A database dump or backup must not hand over the secrets that prove our webhook
requests are ours. Each is stored as a Fernet token (AES-128-CBC with an HMAC)
under a key derived from ``SECRET_KEY`` with HKDF-SHA256, so the key lives in
the configuration, never beside the data. Tokens made under an older key in
``SECRET_KEY_FALLBACKS`` still open (MultiFernet), so rotating the key does not
cut the receivers off. A secret stored in plain text by an older version
("whsec_..." in the column) is accepted and sealed on the worker's next pass.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PLAIN_PREFIX = "whsec_"
_INFO = b"funnel webhook signing secrets v1"


class SecretUnreadable(ValueError):
    """No configured key opens the stored secret (SECRET_KEY changed without fallback)."""


def _fernet(secret_key: str, info: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    def __init__(self, secret_keys: Sequence[str], info: bytes = _INFO) -> None:
        """``info`` separates the keys of different uses (HKDF's context string)."""
        keys = [k for k in secret_keys if k]
        if not keys:
            raise ValueError("a SECRET_KEY is needed to encrypt stored secrets")
        self._box = MultiFernet([_fernet(k, info) for k in keys])  # the first one seals

    def seal(self, plain: str) -> str:
        return self._box.encrypt(plain.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if stored.startswith(PLAIN_PREFIX):
            return stored  # written before encryption; sealed on the next worker pass
        try:
            return self._box.decrypt(stored.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SecretUnreadable(
                "the webhook secret cannot be decrypted with SECRET_KEY or "
                "SECRET_KEY_FALLBACKS (was the key changed without keeping the old one?)"
            ) from exc

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return not stored.startswith(PLAIN_PREFIX)


def box_from_config(config) -> SecretBox:
    """The box of an app's (or worker's) configuration: SECRET_KEY, then its fallbacks."""
    return SecretBox((config.get("SECRET_KEY") or "", *config.get("SECRET_KEY_FALLBACKS", [])))
