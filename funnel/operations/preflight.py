"""Start-up checks: a wrong DATABASE_URL or an unreachable Redis is one clear line.

gunicorn (deploy/gunicorn.conf.py) and ``flask --app funnel worker`` run these
before serving, so an operator sees what to fix instead of a traceback, and
systemd's restart loop shows the same line each time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

CONNECT_TIMEOUT = 5  # seconds; a host that never answers must not hang start-up


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(inner).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(inner).__name__


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"


def database_problem(url: str) -> str | None:
    from funnel.db import make_engine

    try:
        engine = make_engine(url, immediate=False)
    except (ArgumentError, ValueError) as exc:
        return f"DATABASE_URL is not a database URL ({_shown(url)}): {_first_line(exc)}"
    except Exception as exc:  # noqa: BLE001 - e.g. the driver for that scheme is missing
        return f"DATABASE_URL {_shown(url)} cannot be used: {_first_line(exc)}"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return f"cannot connect to the database at {_shown(url)}: {_first_line(exc)}"
    finally:
        engine.dispose()
    return None


def redis_problem(uri: str) -> str | None:
    if not uri.startswith(("redis://", "rediss://", "unix://")):
        return None
    try:
        import redis
    except ImportError:
        return "RATELIMIT_STORAGE_URI is Redis but the redis package is not installed"
    try:
        client = redis.Redis.from_url(uri, socket_connect_timeout=CONNECT_TIMEOUT,
                                      socket_timeout=CONNECT_TIMEOUT)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return f"cannot reach Redis at {uri.split('@')[-1]} (RATELIMIT_STORAGE_URI): {_first_line(exc)}"
    return None


def problems(config: Mapping[str, Any]) -> list[str]:
    """Every reason this configuration cannot serve, one line each."""
    found = [database_problem(config["DATABASE_URL"]),
             redis_problem(str(config.get("RATELIMIT_STORAGE_URI") or ""))]
    return [p for p in found if p]
