"""A DNS server on loopback for the check-up's tests, answering from a dict the test
edits: ``zone[("name.", "TXT")] = ["v=spf1 …"]``. Built on dnspython's message
parsing; UDP only, one thread. Nothing leaves the machine."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

# A domain set up the way the check-up wants it, sending with SendGrid.
DOMAIN = "runstronger.example"


def good_zone(domain: str = DOMAIN) -> dict[tuple[str, str], list[str]]:
    return {
        (domain, "TXT"): ["v=spf1 include:sendgrid.net ~all", "google-site-verification=abc"],
        (f"s1._domainkey.{domain}", "CNAME"): ["s1.domainkey.u123.wl124.sendgrid.net"],
        (f"s2._domainkey.{domain}", "CNAME"): ["s2.domainkey.u123.wl124.sendgrid.net"],
        (f"_dmarc.{domain}", "TXT"): [f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"],
        (domain, "MX"): ["10 mx1.mailhost.example.", "20 mx2.mailhost.example."],
        (domain, "A"): ["192.0.2.10"],
        (f"em1234.{domain}", "CNAME"): ["u123.wl124.sendgrid.net"],
        (f"url5678.{domain}", "CNAME"): ["sendgrid.net"],
        (f"5678.{domain}", "CNAME"): ["sendgrid.net"],
    }


class DNSServer:
    def __init__(self, zone: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.zone = zone if zone is not None else good_zone()
        self.silent: set[str] = set()  # names never answered (a timeout)
        self.questions: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DNSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                reply = self.answer(dns.message.from_wire(data))
            except Exception:  # a bad packet: no answer, as a real server might
                continue
            if reply is not None:
                self.sock.sendto(reply.to_wire(), peer)

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        self.questions.append((name, rdtype))
        if name in self.silent:
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        known = {n for n, _t in self.zone}
        if name not in known:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            return reply
        values = self.zone.get((name, rdtype), [])
        if values:
            if rdtype == "TXT":
                values = ['"' + v.replace('"', '\\"') + '"' for v in values]
            elif rdtype == "CNAME":
                values = [v if v.endswith(".") else v + "." for v in values]
            reply.answer.append(dns.rrset.from_text_list(q.name, 300, "IN", rdtype, values))
        return reply
