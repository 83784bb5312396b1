"""Per-client limits on the sign-up form.

A coach's talk puts a room of runners behind one Wi-Fi address, so the limits
count *sign-ups that passed validation* (a typo costs nothing) and are set high
enough for that room, while a script posting hundreds of times is cut. A second,
higher limit counts every POST, valid or not, so a flood of garbage stops too.

Counters live in ``RATELIMIT_STORAGE_URI`` (memory, or Redis shared by several
web processes); each app keeps its own storage so tests and processes never
share a counter by accident.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from typing import cast

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string

EXTENSION = "funnel.ratelimits"


@functools.lru_cache(maxsize=4096)  # asked three times per sign-up; parsing is most of a hit
def client_key(address: str | None) -> str:
    """Who is asking, for counting: one IPv4 address, or one IPv6 /64.

    An IPv6 home or office network is a /64, and anyone on it can pick a new
    address per request, so counting single IPv6 addresses would count nothing.
    """
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def remote_key() -> str:
    """The current request's client (after ProxyFix, the address behind the proxy)."""
    return client_key(request.remote_addr)


@functools.lru_cache(maxsize=32)
def _parse(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


class ProcessCounters(Storage):
    """Fixed-window counters in this process, for ``memory://``.

    limits' own memory storage starts a timer thread to drop expired counters
    whenever the last one has finished, i.e. about once per sign-up: a third of
    a sign-up's time in the profile (README, Benchmarks). Here expired counters
    are dropped by the caller, at most once per ``SWEEP_SECONDS``."""

    SWEEP_SECONDS = 10.0

    def __init__(self, uri: str | None = None, **options: float | str | bool) -> None:
        super().__init__(uri)
        self._counts: dict[str, list[float]] = {}  # key: [count, expires at]
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            entry = self._counts.get(key)
            if entry is None or entry[1] <= now:
                entry = self._counts[key] = [0, now + expiry]
            entry[0] += amount
            return int(entry[0])

    def get(self, key: str) -> int:
        entry = self._counts.get(key)
        return int(entry[0]) if entry is not None and entry[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        entry = self._counts.get(key)
        return entry[1] if entry is not None else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            n = len(self._counts)
            self._counts.clear()
        return n

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._next_sweep = now + self.SWEEP_SECONDS


class SignupLimits:
    def __init__(self, storage_uri: str, prefix: str) -> None:
        # Synchronous storages only: limits' async ones need an async strategy.
        self.storage: Storage = (ProcessCounters() if storage_uri.startswith("memory://")
                                 else cast(Storage, storage_from_string(storage_uri)))
        self.prefix = prefix

    def test(self, kind: str, spec: str, key: str) -> bool:
        """True when one more request would still be within every limit in ``spec``."""
        # limits' FixedWindowRateLimiter.test, with the counters' keys made once per client.
        get = self.storage.get
        return all(get(name) < amount for name, _expiry, amount in
                   _windows(spec, self.prefix, kind, key))

    def hit(self, kind: str, spec: str, key: str) -> bool:
        """Count one request; False when any of the limits in ``spec`` is exceeded."""
        ok = True
        incr = self.storage.incr
        for name, expiry, amount in _windows(spec, self.prefix, kind, key):
            # Every window is counted even after one says no, so the hourly
            # limit still sees a flood that the per-minute one already stopped.
            # limits' FixedWindowRateLimiter.hit, with the counter's key made once per client.
            ok = incr(name, expiry, amount=1) <= amount and ok
        return ok


@functools.lru_cache(maxsize=4096)
def _windows(spec: str, prefix: str, kind: str, key: str) -> tuple[tuple[str, int, int], ...]:
    """Each limit of ``spec`` as (its counter's key, its window in seconds, its
    amount), as limits' fixed-window strategy reads a RateLimitItem: making the
    key was most of a hit's time (docs/million.md, Sign-ups)."""
    return tuple((item.key_for(prefix, kind, key), item.get_expiry(), item.amount)
                 for item in _parse(spec))


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = SignupLimits(
        app.config.get("RATELIMIT_STORAGE_URI") or "memory://",
        app.config.get("RATELIMIT_KEY_PREFIX") or "funnel",
    )


def _limits() -> SignupLimits:
    return current_app.extensions[EXTENSION]


def hit(kind: str, config_key: str) -> bool:
    """Count this request against the limit named by ``config_key``; False when over."""
    return _limits().hit(kind, current_app.config[config_key], remote_key())


def within(kind: str, config_key: str) -> bool:
    """Whether one more would be allowed, without counting it."""
    return _limits().test(kind, current_app.config[config_key], remote_key())
