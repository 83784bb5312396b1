"""Per-account sign-in limits that slow a password guesser without letting a
stranger lock the owner out.

The per-IP limit (``RATELIMIT_LOGIN``) stops one client hammering the form; these
count failures *per account*:

- per account and client (an IPv4 address or IPv6 /64): from the
  ``FREE_FAILURES``-th failure on, each one makes that client wait twice as long
  as the last before it may try that account again (1 s, 2 s, 4 s ... at most
  ``MAX_DELAY``). Failures elsewhere never slow the owner's own
  connection.
- per account, from clients that never signed in to it: at most
  ``STRANGER_FAILURES`` failures an hour; past that, unknown clients must wait
  for the hour to end, while a client that signed in to the account before (in
  the last 90 days) still gets in. That caps a botnet spread over many addresses.

A waiting client is told how long, and its password is not even checked, so the
delay cannot be used to test guesses. Counters live in ``RATELIMIT_STORAGE_URI``
(Redis when several web processes run), keyed by a hash of the address typed,
whether or not such an account exists.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from funnel.http import ratelimits

FREE_FAILURES = 3
MAX_DELAY = 15 * 60  # seconds
FAILURE_MEMORY = 24 * 3600  # a client's failures on an account are forgotten after a day
STRANGER_FAILURES = 30
STRANGER_WINDOW = 3600
KNOWN_FOR = 90 * 24 * 3600


def _account(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _keys(email: str, client: str) -> dict[str, str]:
    account = _account(email)
    prefix = f"{ratelimits._limits().prefix}/login"
    return {"fail": f"{prefix}/fail/{account}/{client}", "wait": f"{prefix}/wait/{account}/{client}",
            "known": f"{prefix}/known/{account}/{client}", "strangers": f"{prefix}/strangers/{account}"}


def _storage() -> Any:
    # limits' Storage types its answers as possibly awaitable; ours are synchronous.
    return ratelimits._limits().storage


def wait_seconds(email: str, client: str | None = None) -> int:
    """How long this client must wait before trying this account again (0: go ahead)."""
    storage = _storage()
    keys = _keys(email, client or ratelimits.remote_key())
    now = ratelimits.time.time()
    if storage.get(keys["wait"]):
        return max(1, math.ceil(storage.get_expiry(keys["wait"]) - now))
    if not storage.get(keys["known"]) and storage.get(keys["strangers"]) >= STRANGER_FAILURES:
        return max(1, math.ceil(storage.get_expiry(keys["strangers"]) - now))
    return 0


def failed(email: str, client: str | None = None) -> None:
    storage = _storage()
    keys = _keys(email, client or ratelimits.remote_key())
    failures = storage.incr(keys["fail"], FAILURE_MEMORY)
    if failures >= FREE_FAILURES:
        delay = min(MAX_DELAY, 2 ** (failures - FREE_FAILURES))
        storage.clear(keys["wait"])
        storage.incr(keys["wait"], delay)
    if not storage.get(keys["known"]):
        storage.incr(keys["strangers"], STRANGER_WINDOW)


def succeeded(email: str, client: str | None = None) -> None:
    """The client is now known to this account, and its own failures are forgiven."""
    storage = _storage()
    keys = _keys(email, client or ratelimits.remote_key())
    storage.clear(keys["fail"])
    storage.clear(keys["wait"])
    storage.clear(keys["known"])
    storage.incr(keys["known"], KNOWN_FOR)
