"""A local stand-in for SendGrid's v3/mail/send that counts who it was asked to mail.

Runs in its own process (``start``) so parsing a million recipients' JSON does not
share a GIL with what is being measured. Every personalization's ``to`` address is
counted: ``reader<i>@example.com`` in a byte per reader (a million readers take a
megabyte), anything else as a stray. ``GET /counts`` answers the tally as JSON.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READER = re.compile(r"reader(\d+)@example\.com\Z")


class Tally:
    def __init__(self, readers: int) -> None:
        self.copies = bytearray(readers + 1)  # capped at 255 copies: enough to see "twice"
        self.lock = threading.Lock()
        self.requests = 0
        self.recipients = 0
        self.stray = 0

    def count(self, body: bytes) -> None:
        payload = json.loads(body)
        addresses = [to["email"] for p in payload.get("personalizations", []) for to in p["to"]]
        with self.lock:
            self.requests += 1
            self.recipients += len(addresses)
            for address in addresses:
                m = READER.match(address)
                i = int(m.group(1)) if m else -1
                if 0 <= i < len(self.copies):
                    self.copies[i] = min(self.copies[i] + 1, 255)
                else:
                    self.stray += 1

    def summary(self, readers: int) -> dict[str, int]:
        with self.lock:
            got = self.copies[1 : readers + 1]
            return {"requests": self.requests, "recipients": self.recipients,
                    "stray": self.stray, "missing": got.count(0),
                    "once": got.count(1), "more_than_once": readers - got.count(0) - got.count(1)}


def _serve(readers: int, port_out) -> None:
    tally = Tally(readers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            tally.count(body)
            self.send_response(202)
            self.send_header("X-Message-Id", "fake")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            out = json.dumps(tally.summary(readers)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.send(server.server_port)
    server.serve_forever()


def start(readers: int) -> tuple[multiprocessing.Process, int]:
    """The fake in a child process; returns it and its port."""
    here, there = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_serve, args=(readers, there), daemon=True)
    proc.start()
    return proc, here.recv()


def counts(port: int) -> dict[str, int]:
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{port}/counts", timeout=30) as r:
        return json.loads(r.read())
