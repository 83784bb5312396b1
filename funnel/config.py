"""Configuration: defaults, then the environment, then the caller's overrides.

Every variable is documented in README.md. Nothing here touches the disk except
the development secret key, which is generated once and kept in ``instance/``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_VARS = (
    "DATABASE_URL",
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "FUNNEL_ENV",
    "FUNNEL_BASE_URL",
    "MAIL_FROM",
    "MAIL_REPLY_TO",
    "POSTAL_ADDRESS",
    "MAIL_TRANSPORT",
    "OUTBOX_DIR",
    "EMAILS_DIR",
    "DEFAULT_TIMEZONE",
    "SEND_WINDOW_START",
    "SEND_WINDOW_END",
    "CATCHUP_MIN_GAP_HOURS",
    "CONFIRM_MAX_AGE_DAYS",
    "RATELIMIT_SIGNUP",
    "RATELIMIT_LOGIN",
    "RATELIMIT_STORAGE_URI",
    "WORKER_BATCH_SIZE",
    "WORKER_LEASE_SECONDS",
    "WORKER_POLL_SECONDS",
    "SENDGRID_API_KEY",
    "SENDGRID_API_HOST",
    "SENDGRID_TIMEOUT",
    "SENDGRID_SANDBOX",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "EMBED_ORIGINS",
    "API_RATELIMIT",
    "WEBHOOKS_ALLOW_PRIVATE",
    "WEBHOOKS_TIMEOUT",
    "WEBHOOKS_MAX_RESPONSE_BYTES",
)

INT_VARS = {
    "SEND_WINDOW_START",
    "SEND_WINDOW_END",
    "CATCHUP_MIN_GAP_HOURS",
    "CONFIRM_MAX_AGE_DAYS",
    "WORKER_BATCH_SIZE",
    "WORKER_LEASE_SECONDS",
    "WEBHOOKS_MAX_RESPONSE_BYTES",
}
FLOAT_VARS = {"WORKER_POLL_SECONDS", "SENDGRID_TIMEOUT", "WEBHOOKS_TIMEOUT"}
BOOL_VARS = {"SENDGRID_SANDBOX", "WEBHOOKS_ALLOW_PRIVATE"}
LIST_VARS = {"SECRET_KEY_FALLBACKS", "EMBED_ORIGINS"}


def defaults(instance_path: str) -> dict[str, Any]:
    return {
        "FUNNEL_ENV": "development",
        "DATABASE_URL": "sqlite:///" + os.path.join(instance_path, "funnel.db"),
        "FUNNEL_BASE_URL": "http://127.0.0.1:5000",
        "MAIL_FROM": "Run Stronger <plan@runstronger.example>",
        "MAIL_REPLY_TO": "",
        "POSTAL_ADDRESS": "Run Stronger Coaching, 1 Example Street, Leeds LS1 1AA, United Kingdom",
        "MAIL_TRANSPORT": "outbox",
        "OUTBOX_DIR": os.path.join(instance_path, "outbox"),
        "EMAILS_DIR": str(PROJECT_ROOT / "emails"),
        "DEFAULT_TIMEZONE": "Europe/London",
        "SEND_WINDOW_START": 8,
        "SEND_WINDOW_END": 20,
        "CATCHUP_MIN_GAP_HOURS": 20,
        "CONFIRM_MAX_AGE_DAYS": 7,
        "RATELIMIT_SIGNUP": "5 per minute;30 per hour",
        "RATELIMIT_LOGIN": "10 per minute",
        "RATELIMIT_STORAGE_URI": "memory://",
        "WORKER_BATCH_SIZE": 200,
        "WORKER_LEASE_SECONDS": 300,
        "WORKER_POLL_SECONDS": 5.0,
        "SENDGRID_API_KEY": "",
        "SENDGRID_API_HOST": "https://api.sendgrid.com",
        "SENDGRID_TIMEOUT": 10.0,
        "SENDGRID_SANDBOX": False,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": "",
        "SECRET_KEY_FALLBACKS": [],
        "EMBED_ORIGINS": [],
        "API_RATELIMIT": "120 per minute",
        "WEBHOOKS_ALLOW_PRIVATE": False,
        "WEBHOOKS_TIMEOUT": 5.0,
        "WEBHOOKS_MAX_RESPONSE_BYTES": 16 * 1024,
        "WTF_CSRF_TIME_LIMIT": 3600 * 4,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "MAX_CONTENT_LENGTH": 1024 * 1024,
    }


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Read the documented variables, converting numbers and lists."""
    out: dict[str, Any] = {}
    for name in ENV_VARS:
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        if name in INT_VARS:
            out[name] = int(raw)
        elif name in FLOAT_VARS:
            out[name] = float(raw)
        elif name in BOOL_VARS:
            out[name] = raw.lower() in {"1", "true", "yes", "on"}
        elif name in LIST_VARS:
            out[name] = [k.strip() for k in raw.split(",") if k.strip()]
        else:
            out[name] = raw
    if "FUNNEL_BASE_URL" not in out and (environ.get("HOST") or environ.get("PORT")):
        # Links in emails follow where `make run HOST=… PORT=…` actually serves.
        host = environ.get("HOST") or "127.0.0.1"
        out["FUNNEL_BASE_URL"] = f"http://{host}:{environ.get('PORT') or 5000}"
    return out


def development_secret(instance_path: str) -> str:
    """A key generated once per checkout so sessions and links survive restarts."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole to a private temporary file, then linked into place: a second
    # process starting at the same moment either wins or reads the finished key.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def is_production(config: Mapping[str, Any]) -> bool:
    return str(config.get("FUNNEL_ENV", "")).strip().lower() in {"production", "prod"}


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    """What the Flask-free core needs to know, taken from the app's config once."""

    base_url: str
    mail_from: str
    reply_to: str
    postal_address: str
    default_timezone: str
    window_start: int
    window_end: int
    catchup_min_gap_hours: int
    confirm_max_age_days: int
    secret_keys: tuple[str, ...]
    emails_dir: str
    batch_size: int
    lease_seconds: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(
            base_url=config["FUNNEL_BASE_URL"].rstrip("/"),
            mail_from=config["MAIL_FROM"],
            reply_to=config.get("MAIL_REPLY_TO", ""),
            postal_address=config["POSTAL_ADDRESS"],
            default_timezone=config["DEFAULT_TIMEZONE"],
            window_start=int(config["SEND_WINDOW_START"]),
            window_end=int(config["SEND_WINDOW_END"]),
            catchup_min_gap_hours=int(config["CATCHUP_MIN_GAP_HOURS"]),
            confirm_max_age_days=int(config["CONFIRM_MAX_AGE_DAYS"]),
            # Newest first: it signs; the fallbacks only verify.
            secret_keys=(config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", [])),
            emails_dir=config["EMAILS_DIR"],
            batch_size=int(config["WORKER_BATCH_SIZE"]),
            lease_seconds=int(config["WORKER_LEASE_SECONDS"]),
        )
