"""Recipients handed to SendGrid per second: batched vs one request per email.

    .venv/bin/python bench/bench_sendgrid.py [--recipients N] [--repeat R]

Runs against a local fake of the Mail Send API that answers 202 at once, so
what is measured is our side: building the JSON, encoding it, one HTTP round trip
per request. The messages are composed once beforehand (that cost is printed
too; the worker pays it in both modes). "Batched" is how the worker sends: chunks
of ``max_batch`` (1000) and of the default ``WORKER_BATCH_SIZE`` (200), each one
request per step. "Per email" sends every message's own body in its own request.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from funnel.config import Settings, defaults
from funnel.core.sequence import load_sequence
from funnel.mail.compose import Composer
from funnel.models import Subscriber
from funnel.transports import Message
from funnel.transports.sendgrid import SendGridTransport

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Accept(BaseHTTPRequestHandler):
    """SendGrid at its fastest: read the request, answer 202."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bytes_in += int(self.headers.get("Content-Length") or 0)  # type: ignore[attr-defined]
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(202)
        self.send_header("X-Message-Id", "bench")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def compose(n: int) -> tuple[list[Message], float]:
    config = {**defaults("/nonexistent"), "SECRET_KEY": "bench-secret",
              "FUNNEL_BASE_URL": "https://plan.example"}
    composer = Composer(Settings.from_config(config), lambda: NOW)
    step = next(iter(load_sequence(composer.settings.emails_dir)))
    names = ["Sam", None, "O'Brien", "Zoë", "Dev & Co"]
    started = time.perf_counter()
    msgs = [composer.message(step.source,
                             Subscriber(public_id=f"s{i}", email=f"runner{i}@example.com",
                                        first_name=names[i % len(names)]),
                             key=f"k{i}", now=NOW, delivery_id=f"d{i}", category=step.slug)
            for i in range(n)]
    assert all(m.shared is not None for m in msgs), "every message should share one body"
    return msgs, time.perf_counter() - started


def timed(server, label: str, send, n: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        server.requests = server.bytes_in = 0
        started = time.perf_counter()
        send()
        best = min(best, time.perf_counter() - started)
    rate = n / best
    print(f"  {label:<34} {rate:>10,.0f} recipients/s   {server.requests:>6} requests "
          f"{server.bytes_in / 1e6:>8.1f} MB sent")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.recipients

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    server.requests = server.bytes_in = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = SendGridTransport("SG.bench", host=f"http://127.0.0.1:{server.server_port}")

    msgs, compose_seconds = compose(n)
    own_bodies = [dataclasses.replace(m, shared=None, substitutions=None) for m in msgs]
    print(f"{n} recipients of one step; composing them took {compose_seconds:.2f} s "
          f"({n / compose_seconds:,.0f}/s, paid by the worker in every mode)")

    def chunks(size: int):  # type: ignore[no-untyped-def]
        return lambda: [transport.send(msgs[i:i + size]) for i in range(0, n, size)]

    batched = timed(server, "batched, 1000 per request", chunks(1000), n, args.repeat)
    batched_200 = timed(server, "batched, 200 per request (default)", chunks(200), n, args.repeat)
    single = timed(server, "one request per email", lambda: [transport.send([m]) for m in own_bodies],
                   n, args.repeat)
    print(f"  ratio batched(1000) / per email: {batched / single:.1f}x")
    print(f"  ratio batched(200)  / per email: {batched_200 / single:.1f}x")
    server.shutdown()


if __name__ == "__main__":
    main()
