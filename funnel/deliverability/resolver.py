"""DNS look-ups for the check-up, with dnspython.

``DNS_RESOLVER`` ("host" or "host:port") asks that server instead of the system's
(the tests start one on loopback); ``DNS_TIMEOUT`` bounds each question.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver

from funnel.config import ConfigError
from funnel.deliverability.checkup import (
    Line,
    Lookup,
    LookupFailed,
    Provider,
    check,
    provider_for,
)


def make_lookup(resolver_setting: str, timeout: float) -> Lookup:
    if resolver_setting:
        host, _, port = resolver_setting.rpartition(":") if resolver_setting.count(":") == 1 \
            else (resolver_setting, "", "53")
        try:
            port_number = int(port)
        except ValueError as exc:
            raise ConfigError(f"DNS_RESOLVER must be host or host:port, not "
                              f"{resolver_setting!r}") from exc
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port_number
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = resolver.lifetime = timeout
    resolver.cache = None  # a fixed record shows at once on the next check

    def lookup(name: str, rdtype: str) -> list[str]:
        try:
            answer = resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
            if isinstance(exc, dns.resolver.NoNameservers):
                raise LookupFailed(f"{name} {rdtype}: no server answered") from exc
            return []
        except dns.exception.Timeout as exc:
            raise LookupFailed(f"{name} {rdtype}: timed out") from exc
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{name} {rdtype}: {exc}") from exc
        out = []
        for rr in answer.rrset or []:
            if rr.rdtype == dns.rdatatype.TXT:
                out.append(b"".join(rr.strings).decode("utf-8", "replace"))
            elif rr.rdtype == dns.rdatatype.MX:
                out.append(str(rr.exchange).rstrip("."))
            elif rr.rdtype == dns.rdatatype.CNAME:
                out.append(str(rr.target).rstrip("."))
            else:
                out.append(rr.to_text())
        return out

    return lookup


def provider_from_config(config: Mapping[str, Any]) -> Provider:
    from urllib.parse import urlsplit

    transport = str(config.get("MAIL_TRANSPORT", "outbox"))
    host = urlsplit(config.get("SMTP_URL") or "").hostname or ""
    return provider_for(transport, host, list(config.get("DKIM_SELECTORS") or []))


def checkup(config: Mapping[str, Any]) -> list[Line]:
    """The check-up for this app's settings: the one function the CLI and the admin
    page both call."""
    lookup = make_lookup(str(config.get("DNS_RESOLVER") or ""), float(config["DNS_TIMEOUT"]))
    return check(config["MAIL_FROM"], provider_from_config(config), lookup,
                 list(config.get("SENDGRID_DNS_NAMES") or []))
