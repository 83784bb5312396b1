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


# IPv6 prefixes whose addresses carry an IPv4 address a gateway may connect to:
# NAT64 (RFC 6052, the well-known and the local-use prefix) and 6to4 (RFC 3056).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # ::a.b.c.d, deprecated but routed by some


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, in any form that carries one:
    IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo (its client address)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _IPV4_COMPATIBLE or any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        carried = embedded_ipv4(ip)
        if carried is not None and not is_public(carried):
            return False  # a gateway would take the request to a refused IPv4 address
        if carried is not None and (ip in _IPV4_COMPATIBLE or any(ip in n for n in _NAT64)):
            return True  # is_global calls these prefixes non-global; the IPv4 inside decides
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
                carried = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
                shown = f"{ip} (which carries {carried})" if carried is not None else str(ip)
                raise UnsafeURL(
                    f"{target.host} resolves to {shown}, a loopback, private or link-local "
                    "address; webhooks only go to public addresses "
                    "(WEBHOOKS_ALLOW_PRIVATE=1 allows it in development)")
    if not addresses:
        raise UnsafeURL(f"the host name {target.host!r} does not resolve")
    return addresses


def check(url: str, *, allow_private: bool) -> Target:
    target = parse(url)
    resolve(target, allow_private=allow_private)
    return target
