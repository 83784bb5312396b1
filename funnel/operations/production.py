"""What production refuses to start without: each problem says what to set."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MIN_SECRET_KEY_LENGTH = 32
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "0.0.0.0"}
GENERATE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _is_local(host: str) -> bool:
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def problems(config: Mapping[str, Any]) -> list[str]:
    """Why this configuration must not serve the public, one line per problem."""
    found = []
    key = str(config.get("SECRET_KEY") or "")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        found.append(
            f"SECRET_KEY is {len(key)} characters; set at least {MIN_SECRET_KEY_LENGTH} random "
            f"characters (for example the output of {GENERATE_KEY}).")
    base = str(config.get("FUNNEL_BASE_URL") or "")
    parts = urlsplit(base)
    if parts.scheme != "https" or not parts.hostname or _is_local(parts.hostname):
        found.append(
            f"FUNNEL_BASE_URL is {base!r}; set it to the site's public https:// address "
            "(every link in every email starts with it), e.g. https://runstronger.example.")
    if config.get("MAIL_TRANSPORT") == "outbox":
        found.append(
            "MAIL_TRANSPORT is 'outbox', which only writes files and delivers nothing; set "
            "MAIL_TRANSPORT=sendgrid and SENDGRID_API_KEY.")
    return found
