"""Opens and clicks that no person made, told apart from people's. Pure: no database,
no Flask; ``now`` and the delivery time are passed in.

- Machine opens: Apple's Mail Privacy Protection fetches every picture of every email
  as it arrives (from Apple's 17.0.0.0/8 network; SendGrid flags these itself with
  ``sg_machine_open``), and image proxies and prefetchers (Google's, Yahoo's) fetch
  soon after delivery. An open from Apple's network within minutes of sending, or
  from a known proxy's user agent, is a machine's.
- Scanner clicks: mail security gateways follow every link of an email seconds after
  it arrives, all of them in the same second, often with HEAD requests. Several links
  of one email within ``BURST_SECONDS``, a HEAD request or a scanner's user agent is
  a machine's; being early alone is not (a person can click a moment after arrival).

Machine events are kept apart (``machine_event``), counted on the dashboard apart
from people's, and never set anything off (no webhook, no engagement bit, no figure).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

APPLE_PROXY = ipaddress.ip_network("17.0.0.0/8")
APPLE_WINDOW = timedelta(minutes=2)  # MPP fetches as the mail lands
CLICK_SCAN = timedelta(seconds=20)
BURST_SECONDS = 2.0
BURST_LINKS = 3
PROXY_AGENTS = re.compile(r"GoogleImageProxy|YahooMailProxy|ggpht\.com|Outlook-Protocol|"
                          r"Superhuman|Mailchimp|Feedfetcher", re.I)
SCANNER_AGENTS = re.compile(r"Barracuda|Mimecast|Proofpoint|ppops|Forcepoint|Symantec|"
                            r"MessageLabs|SafeLinks|Trend ?Micro|Sophos|FireEye|Cisco|IronPort|"
                            r"python-requests|curl/|Go-http-client|Wget|HeadlessChrome|"
                            r"\bbot\b|crawler|spider|scanner", re.I)


@dataclass(frozen=True)
class Seen:
    """What the provider (or our own link handler) saw of one open or click."""

    kind: str  # "open" or "click"
    at: datetime
    sent_at: datetime | None  # when we handed the email over; None: unknown
    ip: str | None = None
    user_agent: str | None = None
    method: str | None = None  # "HEAD" from a link checker, when known
    provider_says_machine: bool = False  # SendGrid's sg_machine_open
    url: str | None = None


def _from_apple(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip.strip()) in APPLE_PROXY
    except ValueError:
        return False


def classify(event: Seen) -> str | None:
    """Why this open or click is a machine's, or None for a person's."""
    since = (event.at - event.sent_at) if event.sent_at is not None else None
    agent = event.user_agent or ""
    if event.kind == "open":
        if event.provider_says_machine:
            return "Apple Mail Privacy Protection (flagged by the provider)"
        if PROXY_AGENTS.search(agent):
            return "an image proxy fetched the pictures"
        if _from_apple(event.ip) and (since is None or since <= APPLE_WINDOW):
            return "Apple Mail Privacy Protection (Apple's proxy network)"
        # Early alone is not enough: a person on a fast phone opens within seconds too.
        return None
    if event.kind == "click":
        if (event.method or "").upper() == "HEAD":
            return "a HEAD request: a link checker"
        if SCANNER_AGENTS.search(agent):
            return "a mail security scanner's user agent"
        if since is not None and since <= CLICK_SCAN and _from_apple(event.ip):
            return f"clicked {max(since.total_seconds(), 0):.0f} s after sending from Apple's proxy"
        # Early alone is not enough (a person can click a moment after it lands); a
        # scanner shows itself by following every link at once (``bursts``).
    return None


def bursts(clicks: Sequence[tuple[str, datetime, str]]) -> set[int]:
    """Indexes of clicks that are part of a burst: ``BURST_LINKS`` or more different
    links of the same email within ``BURST_SECONDS`` (a scanner following them all).
    ``clicks`` are (email key, time, url)."""
    out: set[int] = set()
    by_email: dict[str, list[int]] = {}
    for i, (key, _at, _url) in enumerate(clicks):
        by_email.setdefault(key, []).append(i)
    for idx in by_email.values():
        idx.sort(key=lambda i: clicks[i][1])
        for pos, i in enumerate(idx):
            window = [j for j in idx[pos:]
                      if (clicks[j][1] - clicks[i][1]).total_seconds() <= BURST_SECONDS]
            if len({clicks[j][2] for j in window}) >= BURST_LINKS:
                out.update(window)
    return out


def split(events: Iterable[Seen]) -> tuple[list[Seen], list[tuple[Seen, str]]]:
    """(people's events, machine events with why)."""
    people, machines = [], []
    for e in events:
        why = classify(e)
        if why is None:
            people.append(e)
        else:
            machines.append((e, why))
    return people, machines
