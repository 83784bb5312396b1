"""Test doubles for SendGrid: Prism (SendGrid's own contract), a recording proxy in
front of it, a scripted fake for what Prism cannot do, and webhook signing.

Prism is installed by ``make test`` into ``.prism/`` (see the Makefile) and started
once per test session on a free port.
"""

from __future__ import annotations

import atexit
import base64
import http.client
import json
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from funnel.config import PROJECT_ROOT
from funnel.mail.shared_body import apply_substitutions
from tests.external import SENDGRID_CONTRACT, require

PRISM_BIN = PROJECT_ROOT / ".prism" / "node_modules" / ".bin" / "prism"
API_KEY = "SG.test-key-not-real"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Prism ---------------------------------------------------------------------

class _Prism:
    """One Prism process for the whole session, however many modules use it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = Path(tempfile.gettempdir()) / "prism-not-started.log"

    def start(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return self.url
        self.spec = require(SENDGRID_CONTRACT)
        if not PRISM_BIN.exists():
            pytest.fail(f"Prism is not installed at {PRISM_BIN}: run `make test` "
                        "(or `make .prism/node_modules/.bin/prism`)")
        for _attempt in range(3):  # another process may grab the free port first
            if self._launch(free_port()):
                return self.url
        tail = self.log.read_text()[-2000:] if self.log.exists() else "(no output)"
        pytest.fail(f"Prism did not start:\n{tail}")

    def _launch(self, port: int) -> bool:
        self.log = Path(tempfile.mkdtemp(prefix="prism-")) / "prism.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port), "--errors", str(self.spec)],
                stdout=out, stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if b"listening on" in self.log.read_bytes():
                return True
            time.sleep(0.2)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            shutil.rmtree(self.log.parent, ignore_errors=True)
        self.proc = None


_PRISM = _Prism()
atexit.register(_PRISM.stop)


def prism_url() -> str:
    """Base URL of Prism mocking SendGrid's Mail Send API from its OpenAPI file,
    started on first use and stopped when the test run ends."""
    return _PRISM.start()


# -- small HTTP servers ----------------------------------------------------------

class _Server:
    """A ThreadingHTTPServer on a free localhost port, stopped on exit."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Exchange:
    """One request we sent and what the contract (Prism) said about it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    violations: list[dict[str, Any]]

    def recipients(self) -> list[str]:
        return [t["email"] for p in self.body.get("personalizations", []) for t in p["to"]]

    def personalization_for(self, email: str) -> dict[str, Any] | None:
        return personalization_for(self.body, email)

    def received_by(self, email: str) -> dict[str, str]:
        return received_by(self.body, email)


def personalization_for(body: dict[str, Any], email: str) -> dict[str, Any] | None:
    return next((p for p in body.get("personalizations", [])
                 if any(t["email"] == email for t in p["to"])), None)


def received_by(body: dict[str, Any], email: str) -> dict[str, str]:
    """The email as that recipient gets it from a Mail Send request: subject, text
    and html with their substitutions applied, as SendGrid does."""
    p = personalization_for(body, email)
    assert p is not None, f"{email} is not in this request"
    subs = p.get("substitutions", {})
    content = {c["type"]: apply_substitutions(c["value"], subs) for c in body["content"]}
    return {"subject": p.get("subject") or body["subject"],
            "text": content["text/plain"], "html": content["text/html"]}


class RecordingProxy(_Server):
    """Forwards to Prism and records every request with Prism's verdict. Adds an
    ``X-Message-Id`` to accepted requests, standing in for SendGrid (Prism has none)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(_ProxyHandler)
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        self.counter = 0

    def problems(self) -> list[str]:
        return [f"{e.status} {e.violations}" for e in self.exchanges
                if e.status != 202 or e.violations]

    def mail(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path == "/v3/mail/send"]


class _ProxyHandler(_Handler):
    def do_POST(self) -> None:
        proxy: RecordingProxy = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        host, port = proxy.upstream.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("authorization", "content-type", "accept", "user-agent")}
            conn.request("POST", self.path, body=body, headers=headers)
            resp = conn.getresponse()
            resp_body = resp.read()
            violations = json.loads(resp.getheader("sl-violations") or "[]")
            status = resp.status
        finally:
            conn.close()
        out_headers = {"Content-Type": resp.getheader("Content-Type") or "application/json"}
        with proxy.lock:
            proxy.exchanges.append(Exchange(self.path, dict(self.headers.items()),
                                            json.loads(body), status, violations))
            proxy.counter += 1
            if 200 <= status < 300:
                out_headers["X-Message-Id"] = f"prism-{proxy.counter}"
        if violations:
            out_headers["sl-violations"] = json.dumps(violations)
        self._reply(status, out_headers, resp_body)


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang: bool = False  # accept the request and never answer (until the test ends)


class FakeSendGrid(_Server):
    """Answers from a script, then 202 with an X-Message-Id; records requests."""

    def __init__(self) -> None:
        super().__init__(_FakeHandler)
        self.script: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # what each request was answered (0: no answer)
        self.lock = threading.Lock()
        self.released = threading.Event()

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        super().__exit__(*exc)

    def recipients(self) -> list[list[str]]:
        return [[t["email"] for p in r["personalizations"] for t in p["to"]]
                for r in self.requests]

    def accepted(self) -> list[dict[str, Any]]:
        """The requests answered 202: the mail that really went out."""
        return [r for r, status in zip(self.requests, self.statuses) if status == 202]

    def times_received(self, email: str, category: str | None) -> int:
        return sum(1 for r in self.accepted() if r.get("categories", [None])[0] == category
                   and personalization_for(r, email) is not None)

    def last_to(self, email: str) -> dict[str, Any]:
        return next(r for r in reversed(self.requests) if personalization_for(r, email))


class _FakeHandler(_Handler):
    def do_POST(self) -> None:
        fake: FakeSendGrid = self.server.owner  # type: ignore[attr-defined]
        body = json.loads(self._body())
        with fake.lock:
            fake.requests.append(body)
            n = len(fake.requests)
            reply = fake.script.pop(0) if fake.script else Reply()
            fake.statuses.append(0 if reply.hang else reply.status)
        if reply.hang:
            fake.released.wait(15)
            return
        headers = dict(reply.headers)
        if reply.status == 202:
            headers.setdefault("X-Message-Id", f"fake-{n}")
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        if data:
            headers.setdefault("Content-Type", "application/json")
        self._reply(reply.status, headers, data)


# -- webhook signing -------------------------------------------------------------

@dataclass
class Signer:
    """A fresh P-256 key pair like the one SendGrid signs its event webhook with."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        """Base64 DER, the form SendGrid's settings page shows."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        sig = self.key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            "Content-Type": "application/json",
        }


def post_events(client, signer: Signer, events: list[dict[str, Any]], timestamp: int):  # type: ignore[no-untyped-def]
    body = json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", data=body, headers=signer.headers(body, timestamp))


def link_path(text: str, kind: str) -> str:
    m = re.search(rf"https?://[^/\s]+(/{kind}/[A-Za-z0-9._\-]+)", text)
    assert m, f"no {kind} link in:\n{text}"
    return m.group(1)


def run_sequence_out(app, clock, db, max_passes: int = 500) -> int:  # type: ignore[no-untyped-def]
    """Run the worker over the following weeks, moving the clock to whatever falls
    due next, until nothing is due any more. Returns the number of passes."""
    from sqlalchemy import func, select

    from funnel.models import Subscriber
    from funnel.runtime import make_worker

    worker = make_worker(app.extensions["funnel"])
    for n in range(1, max_passes + 1):
        worker.run_pass(clock.now)
        db.rollback()
        due = db.scalar(select(func.min(Subscriber.next_due_at)))
        if due is None:
            return n
        if due > clock.now:
            clock.advance(seconds=(due - clock.now).total_seconds())
    raise AssertionError(f"still sending after {max_passes} passes")
