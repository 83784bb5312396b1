"""Where webhook requests may go: public addresses only (server-side request forgery).

A URL is checked when it is registered and again, by resolving its host, right
before every request; the request then connects to the very address that was
checked, so a name that re-resolves to 127.0.0.1 between the two (DNS
rebinding) gains nothing. ``allow_private`` (WEBHOOKS_ALLOW_PRIVATE=1) lifts the
rule for development and tests, where the receiver runs on this machine.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2000


class UnsafeURL(ValueError):
    """The URL cannot be used as a webhook endpoint; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query string

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """Check the URL's shape: http(s), a host, no credentials, a sane length."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL:
        raise UnsafeURL(f"the URL must be between 1 and {MAX_URL} characters")
    if any(ord(c) < 33 for c in url):
        raise UnsafeURL("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"that is not a usable URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host name")
    if parts.username or parts.password:
        raise UnsafeURL("put no user name or password in the URL; requests are signed instead")
    if parts.fragment:
        raise UnsafeURL("the URL must not have a #fragment")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80),
                  path)


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, *, allow_private: bool) -> list[str]:
    """The addresses to connect to. Refused when any address the name has is not
    public: an attacker controls which one a resolver hands out first."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"the host name {target.host!r} does not resolve") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not is_public(ip):
                raise UnsafeURL(
                    f"{target.host} resolves to {ip}, a loopback, private or link-local "
                    "address; webhooks only go to public addresses "
                    "(WEBHOOKS_ALLOW_PRIVATE=1 allows it in development)")
    if not addresses:
        raise UnsafeURL(f"the host name {target.host!r} does not resolve")
    return addresses


def check(url: str, *, allow_private: bool) -> Target:
    target = parse(url)
    resolve(target, allow_private=allow_private)
    return target
