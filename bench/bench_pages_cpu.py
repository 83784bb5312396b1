"""CPU per public page through the WSGI app, no server and no socket: what the app
itself costs, which the wrk figures of bench_pages.py mix with gunicorn's and the
kernel's. Each figure is the best of 5 runs of 3,000 requests (process CPU time),
against the bare Flask page returning a constant (bench/bare_app.py); the pages
are also measured with the fast layer skipped (Flask's own handling), as before
funnel/web/fastpages.py.

    .venv/bin/python bench/bench_pages_cpu.py      (make bench runs it)
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bare_app import app as bare  # noqa: E402
from funnel import create_app  # noqa: E402
from funnel.db import upgrade  # noqa: E402

N = int(os.environ.get("BENCH_REQUESTS", "3000"))


def environ(path: str, query: str = "", **headers: str) -> dict[str, Any]:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
           "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
           "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
           "wsgi.run_once": False, "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1:8000",
           "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "bench", "HTTP_ACCEPT": "*/*"}
    env.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return env


def cpu_per_request(app: Callable, env: dict[str, Any]) -> float:
    """Best of 5 × N, in µs of this process's CPU."""
    status: list[str] = []

    def start_response(s: str, _headers: list, _exc: Any = None) -> None:
        status.append(s)

    def one() -> None:
        body = app(dict(env), start_response)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    for _ in range(300):
        one()
    if not status[-1].startswith("200"):
        raise SystemExit(f"{env['PATH_INFO']}: {status[-1]}")
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(N):
            one()
        best = min(best, (time.process_time() - started) / N)
    return best * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/bench.db"
        upgrade(url)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "OUTBOX_DIR": f"{d}/outbox",
                          "FUNNEL_BASE_URL": "http://127.0.0.1"})
        flask_only = app.extensions["funnel_fastpages"].wsgi_app
        landing = environ("/free-plan", "utm_source=bench")
        first = {}

        def keep(_status: str, headers: list, _exc: Any = None) -> None:
            first.update(headers)

        list(app(dict(landing), keep))
        cookie = first["Set-Cookie"].split(";")[0]
        cases = [
            ("article page", environ("/", "utm_source=bench")),
            ("landing page, new visitor", landing),
            ("landing page, returning visitor", environ("/free-plan", "utm_source=bench",
                                                        cookie=cookie)),
        ]
        base = cpu_per_request(bare, environ("/"))
        print(f"pages in-process: best of 5 x {N:,} requests, load {os.getloadavg()[0]:.1f}")
        print(f"bare flask page (in-process CPU): {base:.0f} µs (1.00 x baseline)")
        for name, env in cases:
            fast = cpu_per_request(app, env)
            slow = cpu_per_request(flask_only, env)
            print(f"{name} (in-process CPU): {fast:.0f} µs ({fast / base:.2f} x baseline; "
                  f"through Flask {slow:.0f} µs, {slow / base:.2f} x)")
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()


if __name__ == "__main__":
    main()
