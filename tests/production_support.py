"""Running the shipped production setup on loopback: gunicorn with deploy/'s config
and a standalone worker, against PostgreSQL and Redis, mail to a local fake SendGrid.

Used by the smoke test and the outage test. PostgreSQL comes from
FUNNEL_TEST_POSTGRES_URL (a database named after it with ``_prod`` appended is
created, so the conftest's own database is left alone); Redis from
FUNNEL_TEST_REDIS_URL (default redis://127.0.0.1:6379/4).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from funnel.config import PROJECT_ROOT
from tests.parallel import database_name
from tests.sendgrid_support import API_KEY, link_path, received_by

BIN = Path(sys.executable).parent
METRICS_TOKEN = "metrics-token-for-tests"


PUBLIC_BASE = "https://runstronger.test"


def postgres_url(suffix: str) -> str:
    base = os.environ.get("FUNNEL_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("FUNNEL_REQUIRE_POSTGRES") == "1":
            pytest.fail("FUNNEL_REQUIRE_POSTGRES=1 but FUNNEL_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set FUNNEL_TEST_POSTGRES_URL)")
    url = make_url(base)
    url = url.set(database=database_name(f"{url.database}_{suffix}"))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    return url.render_as_string(hide_password=False)


def redis_url() -> str:
    import redis

    url = os.environ.get("FUNNEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("FUNNEL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Redis is not reachable at {url}")
        pytest.skip(f"Redis is not reachable at {url} (set FUNNEL_TEST_REDIS_URL)")
    return url


def production_env(tmp: Path, database_url: str, port: int, sendgrid_url: str,
                   webhook_key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FUNNEL_", "SENDGRID_", "MAIL_", "DATABASE_", "PROMETHEUS_"))}
    env.update({
        "FUNNEL_ENV": "production",
        "SECRET_KEY": "smoke-test-secret-key-0123456789abcdef",
        "DATABASE_URL": database_url,
        # Production refuses a loopback or plain-http base: links name the public site,
        # and the tests request their paths from the server on loopback, as nginx would.
        "FUNNEL_BASE_URL": PUBLIC_BASE,
        "MAIL_TRANSPORT": "sendgrid",
        "SENDGRID_API_KEY": API_KEY,
        "SENDGRID_API_HOST": sendgrid_url,
        "SENDGRID_TIMEOUT": "5",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": webhook_key,
        "RATELIMIT_STORAGE_URI": redis_url(),
        "METRICS_TOKEN": METRICS_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "WORKER_POLL_SECONDS": "0.5",
        "TRUSTED_PROXIES": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout} s:\n{self.output()}")


def start(name: str, args: list[str], env: dict[str, str], tmp: Path) -> Proc:
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=out,
                                 stderr=subprocess.STDOUT)
    return Proc(name, popen, log)


def start_web(env: dict[str, str], tmp: Path) -> Proc:
    return start("gunicorn", [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                 env, tmp)


def start_worker(env: dict[str, str], tmp: Path) -> Proc:
    return start("worker", [str(BIN / "flask"), "--app", "funnel", "worker"], env, tmp)


def flask(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "flask"), "--app", "funnel", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str
    seconds: float

    def json(self):  # type: ignore[no-untyped-def]
        return json.loads(self.body)


@dataclass
class Browser:
    """Just enough of a browser: cookies (Secure ones too, as behind TLS) and forms."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        # As nginx would send it: the app trusts one hop (TRUSTED_PROXIES=1).
        hdrs = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7",
                **(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
            # Behind TLS, Flask-WTF checks that a form comes from this very site.
            hdrs.setdefault("Referer", f"https://127.0.0.1:{self.port}{path}")
        started = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read().decode(errors="replace")
        finally:
            conn.close()
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                k, _, rest = value.partition("=")
                self.cookies[k.strip()] = rest.split(";", 1)[0]
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data,
                        time.monotonic() - started)

    def get(self, path: str, **kw) -> Response:  # type: ignore[no-untyped-def]
        return self.request("GET", path, **kw)

    def sign_up(self, email: str, first_name: str = "") -> Response:
        from urllib.parse import urlencode

        page = self.get("/free-plan")
        assert page.status == 200, page.body[:500]
        assert 'name="csrf_token"' not in page.body  # the same page for everyone
        form = urlencode({"email": email, "first_name": first_name})
        return self.request("POST", "/free-plan", body=form)


    def confirm(self, path: str) -> Response:
        """Open a confirmation link and press its button, as a person does."""
        from urllib.parse import urlencode

        page = self.get(path)
        assert page.status == 200, page.body[:500]
        m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.body)
        assert m, "no CSRF token on the confirmation page"
        return self.request("POST", path, body=urlencode({"csrf_token": m.group(1)}))


def wait_until(predicate, timeout: float, what: str, step: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_ready(browser: Browser, proc: Proc, timeout: float = 60) -> None:
    def up() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited:\n{proc.output()}")
        try:
            return browser.get("/healthz", timeout=2).status == 200
        except OSError:
            return False

    wait_until(up, timeout, "gunicorn to answer /healthz")


def mail_to(fake, email: str, category: str | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in fake.accepted()
            if (category is None or r.get("categories", [None])[0] == category)
            and any(t["email"] == email for p in r["personalizations"] for t in p["to"])]


def confirm_link(fake, email: str) -> str:  # type: ignore[no-untyped-def]
    msgs = mail_to(fake, email)
    assert msgs, f"no email to {email}"
    return received_by(msgs[-1], email)["text"]


def metric(text_: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text_.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
        if not want or all(part in got.split(",") for part in want.split(",")):
            total += float(m.group(3))
    return total


__all__ = ["METRICS_TOKEN", "link_path"]
