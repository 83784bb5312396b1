"""Requests per second for the public pages and the sign-up POST, under gunicorn
(2 workers) and wrk (2 threads, 32 connections), against a bare Flask page
returning a constant on the same settings. Runs alternate baseline and pages and
each figure is the median of three, on SQLite and on PostgreSQL, for each worker
class: ``sync`` and ``gthread`` (deploy/gunicorn.conf.py's) with its shipped number
of threads (keeps connections alive, and lets PostgreSQL write several sign-ups'
commits at once; BENCH_THREADS sets another).

    .venv/bin/python bench/bench_pages.py      (make bench runs it)

BENCH_POSTGRES_URL names a PostgreSQL database it may drop and re-create
(default postgresql+psycopg://postgres@127.0.0.1:5432/funnel_bench); when the
server is not reachable the PostgreSQL half is skipped with one line.
BENCH_SECONDS sets the length of each wrk run (default 5); BENCH_WORKERS the
worker classes (default "sync,gthread").

A second baseline is the bare page sending as many bytes as the article, to show
how much of the gap is the body's size alone. Each page is also given as the
gunicorn workers' CPU per request (from /proc), which on a shared machine moves
much less than the rates do.

wrk posts every sign-up from one address: the per-client limits are raised so
that each POST is accepted, but each is still counted against them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# gthread's threads per worker: BENCH_THREADS, else deploy/gunicorn.conf.py's default.
SHIPPED_THREADS = re.search(r'"GUNICORN_THREADS", "(\d+)"',
                            (ROOT / "deploy" / "gunicorn.conf.py").read_text()).group(1)
THREADS = os.environ.get("BENCH_THREADS", SHIPPED_THREADS)
WORKER_ARGS = {"sync": ["-k", "sync"], "gthread": ["-k", "gthread", "--threads", THREADS]}


class Server:
    def __init__(self, app: str, env: dict[str, str], log: Path, workers: str,
                 cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "bench" / "gunicorn_bench.py"),
             "-w", "2", *WORKER_ARGS[workers], "-b", f"127.0.0.1:{self.port}", app],
            cwd=cwd, env=env, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"gunicorn {app} did not start; see {log}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._log.close()


def wrk(url: str, script: Path | None = None, env: dict[str, str] | None = None) -> float:
    return wrk_counted(url, script, env)[0]


def wrk_counted(url: str, script: Path | None = None,
                env: dict[str, str] | None = None) -> tuple[float, int]:
    """Requests per second, and how many requests were answered."""
    cmd = ["wrk", "-t2", "-c32", f"-d{SECONDS}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise SystemExit(f"{url}: {bad.group(1)} failed requests\n{out}")
    errors = re.search(r"Socket errors: .*timeout (\d+)", out)
    if errors and int(errors.group(1)) > 0:
        print(f"  ({url}: {errors.group(1)} timeouts)", file=sys.stderr)
    return (float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            int(re.search(r"(\d+) requests in", out).group(1)))


def workers_cpu(server: Server) -> float:
    """CPU seconds used so far by the server's worker processes (Linux /proc)."""
    total = 0
    for child in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split():
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def measured(server: Server, url: str, cpu: list[float], script: Path | None = None,
             env: dict[str, str] | None = None) -> float:
    """wrk's rate; appends the workers' CPU per request, in µs, to ``cpu``. Unlike
    the rate, that hardly moves with what else the machine is running."""
    before = workers_cpu(server)
    rate, count = wrk_counted(url, script, env)
    cpu.append((workers_cpu(server) - before) / max(count, 1) * 1e6)
    return rate


def postgres_url(suffix: str = "") -> str | None:
    """A new, empty database on the bench's server (``funnel_bench`` + ``suffix``),
    or None, saying why, when there is no server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/funnel_bench"))
    url = url.set(database=f"{url.database}{suffix}")
    try:
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001 - any reason means "no PostgreSQL here"
        print(f"pages (PostgreSQL): skipped, no server at {url.host}:{url.port} ({exc.__class__.__name__})")
        return None
    return url.render_as_string(hide_password=False)


def run(label: str, db_url: str, tmp: Path, workers: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "bench",
           "OUTBOX_DIR": str(tmp / "outbox"), "RATELIMIT_SIGNUP": "100000000 per minute",
           "RATELIMIT_SIGNUP_ATTEMPTS": "100000000 per minute",
           # No worker takes the rows in: past the default 5,000 the form answers 503.
           "SIGNUP_INTAKE_MAX": "100000000",
           "FUNNEL_BASE_URL": "http://127.0.0.1"}
    subprocess.run([str(BIN / "flask"), "--app", "funnel", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    bare = Server("bench.bare_app:app", env, tmp / f"bare-{label}-{workers}.log", workers)
    app = Server("wsgi:app", env, tmp / f"app-{label}-{workers}.log", workers)
    script = ROOT / "bench" / "signup.lua"
    # How much of the gap is the article's size alone: the bare page sending as many bytes.
    size = len(urllib.request.urlopen(app.url + "/?utm_source=bench").read())
    names = ("bare", "bare_sized", "article", "landing", "signup")
    figures: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    try:
        for _ in range(ROUNDS):  # alternating, so a noisy neighbour hits every figure alike
            figures["bare"].append(measured(bare, bare.url + "/", cpus["bare"]))
            figures["bare_sized"].append(
                measured(bare, f"{bare.url}/bytes/{size}", cpus["bare_sized"]))
            figures["article"].append(measured(app, app.url + "/?utm_source=bench", cpus["article"]))
            figures["landing"].append(
                measured(app, app.url + "/free-plan?utm_source=bench", cpus["landing"]))
            figures["signup"].append(measured(app, app.url + "/free-plan", cpus["signup"],
                                              script))
    finally:
        bare.stop()
        app.stop()
    med = {k: statistics.median(v) for k, v in figures.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    label = f"{label}, {workers}"
    print(f"bare flask page ({label}): {med['bare']:.0f} req/s (1.00 x baseline)")
    print(f"bare flask page of the article's {size:,} bytes ({label}): {med['bare_sized']:.0f} req/s "
          f"({med['bare_sized'] / med['bare']:.2f} x baseline; the article is "
          f"{med['article'] / med['bare_sized']:.2f} x this one)")
    for k, what in (("article", "article page"), ("landing", "landing page"),
                    ("signup", "sign-up POST")):
        print(f"{what} ({label}): {med[k]:.0f} req/s ({med[k] / med['bare']:.2f} x baseline)")
    # The same comparison in the workers' CPU per request (lower is better): the
    # rate of a page that costs the workers as much as the bare page does.
    for k, what in (("bare", "bare flask page"), ("article", "article page"),
                    ("landing", "landing page"), ("signup", "sign-up POST")):
        print(f"{what}, workers' CPU ({label}): {cpu[k]:.0f} µs/request "
              f"({cpu['bare'] / cpu[k]:.2f} x baseline)")
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        visits = conn.execute(text("select count(*) from visit")).scalar()
        subs = conn.execute(text("select count(*) from subscriber")).scalar()
        # No worker runs here: the sign-ups wait in the intake for one.
        intake = conn.execute(text("select count(*) from signup_intake")).scalar()
    engine.dispose()
    print(f"  ({label}: {visits} visits written after the graceful stop, {subs + intake} sign-ups "
          f"stored, {intake} of them in the intake for the worker)")


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    classes = os.environ.get("BENCH_WORKERS", "sync,gthread").split(",")
    print(f"pages: gunicorn 2 workers ({', '.join(classes)}; gthread x {THREADS} threads), "
          f"wrk -t2 -c32 -d{SECONDS}s, "
          f"median of {ROUNDS}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for workers in classes:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            run("SQLite", f"sqlite:///{tmp}/bench.db", tmp, workers)
            pg = postgres_url()
            if pg:
                run("PostgreSQL", pg, tmp, workers)
    print(f"  (load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
