"""Signed links. One salt per purpose, so a token for one thing is useless for another.

Tokens carry only an opaque public id. Verification accepts every configured key
(the newest signs), so rotating ``SECRET_KEY`` does not break links already sent.
"""

from __future__ import annotations

import hmac
import json
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

PURPOSES = ("confirm", "unsubscribe", "preferences", "view", "plan")


class BadToken(ValueError):
    """Tampered, truncated or meant for another purpose."""


class ExpiredToken(BadToken):
    def __init__(self, payload: Any) -> None:
        super().__init__("link expired")
        self.payload = payload


class _KeyCachingSigner(TimestampSigner):
    """Derives its key once: a batch signs six links per email with the same key."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        cache = self.__dict__.setdefault("_derived", {})
        k = self.secret_key if secret_key is None else secret_key
        if k not in cache:
            cache[k] = super().derive_key(secret_key)
        return cache[k]


class _SignerCachingSerializer(URLSafeTimedSerializer):
    """The same tokens as URLSafeTimedSerializer, with one signer per salt kept."""

    def make_signer(self, salt: str | bytes | None = None):
        cache = self.__dict__.setdefault("_signers", {})
        if salt not in cache:
            cache[salt] = super().make_signer(salt)
        return cache[salt]


class Tokens:
    def __init__(self, secret_keys: Sequence[str],
                 clock: Callable[[], datetime] | None = None) -> None:
        # itsdangerous signs with the last key and verifies with all of them.
        keys = list(reversed([k for k in secret_keys if k]))
        signer: type[TimestampSigner] = _KeyCachingSigner
        if clock is not None:
            now = clock

            # Token ages follow the caller's clock, like everything else in the core.
            class ClockSigner(_KeyCachingSigner):
                def get_timestamp(self) -> int:
                    return int(now().timestamp())

            signer = ClockSigner
        self._serializers = {
            p: _SignerCachingSerializer(keys, salt=f"funnel.{p}", signer=signer) for p in PURPOSES
        }

    def make(self, purpose: str, payload: Any) -> str:
        """Byte for byte what ``URLSafeTimedSerializer.dumps`` gives (tests compare
        them), in a third of the time: a send signs six links per recipient."""
        serializer = self._serializers[purpose]
        signer = serializer.make_signer()
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        compressed = zlib.compress(raw)
        body = (b"." + base64_encode(compressed)) if len(compressed) < len(raw) - 1 \
            else base64_encode(raw)
        value = body + b"." + base64_encode(int_to_bytes(signer.get_timestamp()))
        signature = hmac.digest(signer.derive_key(), value, "sha1")
        return (value + b"." + base64_encode(signature)).decode("ascii")

    def make_slowly(self, purpose: str, payload: Any) -> str:
        """itsdangerous itself: the reference ``make`` must agree with."""
        return self._serializers[purpose].dumps(payload)

    def load(self, purpose: str, token: str, max_age: int | None = None) -> Any:
        try:
            return self._serializers[purpose].loads(token, max_age=max_age)
        except SignatureExpired as exc:
            try:
                payload = self._serializers[purpose].loads(token)
            except BadSignature:
                raise BadToken("invalid link") from exc
            raise ExpiredToken(payload) from exc
        except (BadSignature, UnicodeError, ValueError) as exc:
            raise BadToken("invalid link") from exc
