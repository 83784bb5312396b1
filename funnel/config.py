"""Configuration: defaults, then the environment, then the caller's overrides.

Every variable is documented in docs/operating.md (Configuration). Nothing here touches the disk except
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

import click

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
    "PERSONAL_LINK_DAYS",
    "DATA_EXPORT_LINK_HOURS",
    "SIGNUP_INTAKE_MAX",
    "RATELIMIT_FRESH_LINK",
    "WORKER_STOP_GRACE",
    "ADMIN_REQUIRE_2FA",
    "RATELIMIT_SIGNUP",
    "RATELIMIT_LOGIN",
    "RATELIMIT_SIGNUP_ATTEMPTS",
    "RATELIMIT_STORAGE_URI",
    "TRUSTED_PROXIES",
    "ADMIN_SESSION_MAX_HOURS",
    "PENDING_RETENTION_DAYS",
    "WORKER_BATCH_SIZE",
    "WORKER_LEASE_SECONDS",
    "WORKER_POLL_SECONDS",
    "VISIT_FLUSH_SECONDS",
    "PAGE_CACHE_SIZE",
    "FAST_PAGES",
    "SENDGRID_API_KEY",
    "SENDGRID_API_HOST",
    "SENDGRID_TIMEOUT",
    "SENDGRID_SANDBOX",
    "SIGNUP_ASYNC_COMMIT",
    "SIGNUP_GROUP_COMMIT",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "FAILURE_ALERTS",
    "FAILURE_ALERTS_TO",
    "FAILURE_ALERTS_EVERY_MINUTES",
    "IMPORT_OPTIN_DAILY_MAX",
    "EMBED_ORIGINS",
    "API_RATELIMIT",
    "WEBHOOKS_ALLOW_PRIVATE",
    "WEBHOOKS_TIMEOUT",
    "WEBHOOKS_MAX_RESPONSE_BYTES",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "METRICS_TOKEN",
    "READY_WORKER_MAX_AGE",
    "SQLITE_BUSY_TIMEOUT",
    "DATABASE_CONNECT_TIMEOUT",
    # Mail that arrives (docs/deliverability.md).
    "SMTP_URL",
    "SMTP_TIMEOUT",
    "SMTP_CA_FILE",
    "MAIL_FALLBACK",
    "FALLBACK_AFTER",
    "FALLBACK_PROBE_MINUTES",
    "DKIM_SELECTORS",
    "SENDGRID_DNS_NAMES",
    "DNS_RESOLVER",
    "DNS_TIMEOUT",
    "WARMUP_START",
    "BRAKES_MIN_SENT",
    # The fast paths, each proven equal to its plain path by a hypothesis property
    # (tests/test_fast_paths_equal.py); either can be turned off (0) to rule it out.
    "FAST_COMPOSE",
    "FAST_ADDRESS_CHECK",
    "FAST_NEWSLETTER",
    "FAST_SIGNUP",
)

INT_VARS = {
    "TRUSTED_PROXIES",
    "ADMIN_SESSION_MAX_HOURS",
    "PENDING_RETENTION_DAYS",
    "SEND_WINDOW_START",
    "SEND_WINDOW_END",
    "CATCHUP_MIN_GAP_HOURS",
    "CONFIRM_MAX_AGE_DAYS",
    "PERSONAL_LINK_DAYS",
    "DATA_EXPORT_LINK_HOURS",
    "SIGNUP_INTAKE_MAX",
    "WORKER_BATCH_SIZE",
    "WORKER_LEASE_SECONDS",
    "PAGE_CACHE_SIZE",
    "FAILURE_ALERTS_EVERY_MINUTES",
    "IMPORT_OPTIN_DAILY_MAX",
    "WEBHOOKS_MAX_RESPONSE_BYTES",
    "WARMUP_START",
    "BRAKES_MIN_SENT",
}
FLOAT_VARS = {"WORKER_POLL_SECONDS", "SENDGRID_TIMEOUT", "VISIT_FLUSH_SECONDS", "WEBHOOKS_TIMEOUT",
              "READY_WORKER_MAX_AGE", "SQLITE_BUSY_TIMEOUT", "DATABASE_CONNECT_TIMEOUT",
              "SMTP_TIMEOUT", "FALLBACK_AFTER", "FALLBACK_PROBE_MINUTES", "DNS_TIMEOUT",
              "WORKER_STOP_GRACE"}
BOOL_VARS = {"SENDGRID_SANDBOX", "WEBHOOKS_ALLOW_PRIVATE", "FAILURE_ALERTS", "ADMIN_REQUIRE_2FA",
             "SIGNUP_ASYNC_COMMIT", "FAST_COMPOSE", "FAST_ADDRESS_CHECK", "FAST_NEWSLETTER", "FAST_PAGES",
             "SIGNUP_GROUP_COMMIT", "FAST_SIGNUP"}
LIST_VARS = {"SECRET_KEY_FALLBACKS", "EMBED_ORIGINS", "DKIM_SELECTORS", "SENDGRID_DNS_NAMES"}


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
        # Preference, plan and view links work this long after the email that
        # carried them; the data export wants a link from the last day
        # (docs/security.md). Unsubscribe links never expire.
        "PERSONAL_LINK_DAYS": 90,
        "DATA_EXPORT_LINK_HOURS": 24,
        "RATELIMIT_FRESH_LINK": "5 per hour",
        # Sign-ups waiting for the worker before the form says "try later" (0: no cap).
        "SIGNUP_INTAKE_MAX": 5000,
        # Seconds a worker told to stop (SIGTERM) may take; webhooks in flight are cut
        # at once. Keep it below systemd's TimeoutStopSec (deploy/funnel-worker.service).
        "WORKER_STOP_GRACE": 20.0,
        # Every admin account must set up two-factor sign-in before using the admin.
        "ADMIN_REQUIRE_2FA": False,
        # Sign-ups that passed validation, per client: a room of runners on one
        # Wi-Fi fits; a script does not. Attempts count every POST.
        "RATELIMIT_SIGNUP": "30 per minute;200 per hour",
        "RATELIMIT_SIGNUP_ATTEMPTS": "60 per minute;400 per hour",
        "TRUSTED_PROXIES": 0,
        "ADMIN_SESSION_MAX_HOURS": 12,
        "PENDING_RETENTION_DAYS": 30,
        "RATELIMIT_LOGIN": "10 per minute",
        "RATELIMIT_STORAGE_URI": "memory://",
        "WORKER_BATCH_SIZE": 200,
        "WORKER_LEASE_SECONDS": 300,
        "WORKER_POLL_SECONDS": 5.0,
        "VISIT_FLUSH_SECONDS": 2.0,
        "PAGE_CACHE_SIZE": 1000,
        # The article and landing page replayed before Flask (funnel.web.public.fastpages).
        "FAST_PAGES": True,
        "SENDGRID_API_KEY": "",
        "SENDGRID_API_HOST": "https://api.sendgrid.com",
        "SENDGRID_TIMEOUT": 10.0,
        "SENDGRID_SANDBOX": False,
        # Off: a sign-up is on disk before "check your inbox" is shown (README).
        "SIGNUP_ASYNC_COMMIT": False,
        "SIGNUP_GROUP_COMMIT": True,  # several requests' intake rows, one commit
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
        "FAILURE_ALERTS_TO": "",
        "FAILURE_ALERTS_EVERY_MINUTES": 60,
        "IMPORT_OPTIN_DAILY_MAX": 200,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "INFO",
        "METRICS_TOKEN": "",
        "READY_WORKER_MAX_AGE": 60.0,
        "SQLITE_BUSY_TIMEOUT": 5.0,
        "DATABASE_CONNECT_TIMEOUT": 5.0,
        # MAIL_TRANSPORT=smtp, or MAIL_FALLBACK=smtp behind SendGrid.
        "SMTP_URL": "",
        "SMTP_TIMEOUT": 30.0,
        "SMTP_CA_FILE": "",  # a private CA's certificate (a self-signed Postfix)
        "MAIL_FALLBACK": "",
        # Minutes of SendGrid failing (5xx, timeouts) before SMTP takes over…
        "FALLBACK_AFTER": 10.0,
        # …and how often SendGrid is tried again meanwhile, to switch back.
        "FALLBACK_PROBE_MINUTES": 5.0,
        # The deliverability check-up: DKIM selectors to look for (SendGrid: s1, s2),
        # and a resolver "host:port" instead of the system's (tests).
        "DKIM_SELECTORS": [],
        # SendGrid's per-account names (em1234, url5678, 5678) to check as CNAMEs.
        "SENDGRID_DNS_NAMES": [],
        "DNS_RESOLVER": "",
        "DNS_TIMEOUT": 5.0,
        # Newsletter sends on a new domain's first day, growing by half each day; 0: off.
        "WARMUP_START": 0,
        # The brakes judge a newsletter or a day only from this many emails on.
        "BRAKES_MIN_SENT": 200,
        "FAST_COMPOSE": True,
        "FAST_ADDRESS_CHECK": True,
        "FAST_NEWSLETTER": True,
        # The sign-up POST checked without WTForms and answered before Flask when it
        # is the plain case (funnel.web.public.fastsignup).
        "FAST_SIGNUP": True,
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
    if "LOG_FORMAT" in out:
        out["LOG_FORMAT"] = out["LOG_FORMAT"].lower()
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


class ConfigError(click.ClickException):
    """The configuration cannot be used; the message says what to set.

    A ClickException, so ``flask --app funnel …`` prints it as one line, not a traceback."""


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
    pending_retention_days: int = 30
    # The control room (README "The control room"): off in development unless set.
    failure_alerts: bool = False
    failure_alerts_to: str = ""
    failure_alerts_every_minutes: int = 60
    import_optin_daily_max: int = 200
    mail_fallback: str = ""  # MAIL_FALLBACK (docs/deliverability.md)
    warmup_start: int = 0  # WARMUP_START: newsletter emails on the first day; 0: no warm-up
    brakes_min_sent: int = 200
    # Off: every recipient of a batched email is rendered in full (then split).
    fast_compose: bool = True
    # Off: a newsletter batch is read and written as ORM objects, one per reader.
    fast_newsletter: bool = True

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
            pending_retention_days=int(config.get("PENDING_RETENTION_DAYS", 30)),
            failure_alerts=bool(config.get("FAILURE_ALERTS", is_production(config))),
            failure_alerts_to=config.get("FAILURE_ALERTS_TO", ""),
            failure_alerts_every_minutes=int(config.get("FAILURE_ALERTS_EVERY_MINUTES", 60)),
            import_optin_daily_max=int(config.get("IMPORT_OPTIN_DAILY_MAX", 200)),
            mail_fallback=config.get("MAIL_FALLBACK", "") or "",
            warmup_start=int(config.get("WARMUP_START", 0) or 0),
            brakes_min_sent=int(config.get("BRAKES_MIN_SENT", 200)),
            fast_compose=bool(config.get("FAST_COMPOSE", True)),
            fast_newsletter=bool(config.get("FAST_NEWSLETTER", True)),
        )
