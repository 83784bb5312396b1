"""Signed links. One salt per purpose, so a token for one thing is useless for another.

Tokens carry only an opaque public id. Verification accepts every configured key
(the newest signs), so rotating ``SECRET_KEY`` does not break links already sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

PURPOSES = ("confirm", "unsubscribe", "preferences", "view", "plan")


class BadToken(ValueError):
    """Tampered, truncated or meant for another purpose."""


class ExpiredToken(BadToken):
    def __init__(self, payload: Any) -> None:
        super().__init__("link expired")
        self.payload = payload


class Tokens:
    def __init__(self, secret_keys: Sequence[str],
                 clock: Callable[[], datetime] | None = None) -> None:
        # itsdangerous signs with the last key and verifies with all of them.
        keys = list(reversed([k for k in secret_keys if k]))
        signer: type[TimestampSigner] = TimestampSigner
        if clock is not None:
            now = clock

            # Token ages follow the caller's clock, like everything else in the core.
            class ClockSigner(TimestampSigner):
                def get_timestamp(self) -> int:
                    return int(now().timestamp())

            signer = ClockSigner
        self._serializers = {
            p: URLSafeTimedSerializer(keys, salt=f"funnel.{p}", signer=signer) for p in PURPOSES
        }

    def make(self, purpose: str, payload: Any) -> str:
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
