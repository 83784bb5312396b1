"""The sign-up POST of two source trees side by side, alternating in the same
minutes: the bare Flask page, tree A's sign-up, tree B's sign-up, again and
again, each figure the median of ROUNDS. On a shared, noisy machine only such
ratios mean anything (README, Benchmarks).

    .venv/bin/python bench/bench_signup_ab.py OLD_TREE [NEW_TREE]

A tree is a checkout of this project (``git archive`` of a commit will do);
NEW_TREE defaults to this one. Same settings as bench_pages.py: gunicorn 2 workers
of the shipped class, gthread with the shipped threads (BENCH_WORKERS=sync for
sync workers, BENCH_THREADS for another thread count), wrk -t2 -c32, bench/signup.lua, per-client
limits raised. Each figure is given as requests per second and as the workers'
CPU per request, which moves much less on a shared machine. Runs on SQLite
and, when BENCH_POSTGRES_URL's server answers, PostgreSQL (two databases,
``<name>_a`` and ``<name>_b``, dropped and made again). BENCH_B_ENV adds settings
to tree B only, e.g. ``SIGNUP_ASYNC_COMMIT=1`` (comma-separated KEY=VALUE).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_pages import (  # noqa: E402
    BIN,
    ROOT,
    THREADS,
    Server,
    measured,
    postgres_url,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORKERS = os.environ.get("BENCH_WORKERS", "gthread")


def env_for(tree: Path, db_url: str, tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "DATABASE_URL": db_url, "SECRET_KEY": "bench",
            "OUTBOX_DIR": str(tmp / "outbox"), "RATELIMIT_SIGNUP": "100000000 per minute",
            "RATELIMIT_SIGNUP_ATTEMPTS": "100000000 per minute",
            # No worker takes the rows in: past the default 5,000 the form answers 503.
            "SIGNUP_INTAKE_MAX": "100000000",
            "FUNNEL_BASE_URL": "http://127.0.0.1"}


def serve(tree: Path, env: dict[str, str], log: Path) -> Server:
    subprocess.run([str(BIN / "flask"), "--app", "funnel", "db", "upgrade"], cwd=tree, env=env,
                   check=True, capture_output=True)
    # gunicorn puts its working directory first on sys.path: the tree's own code runs.
    return Server("wsgi:app", env, log, WORKERS, cwd=tree)


def run(label: str, urls: dict[str, str], trees: dict[str, Path], tmp: Path) -> None:
    bare = Server("bench.bare_app:app", env_for(ROOT, urls["a"], tmp), tmp / "bare.log", WORKERS)
    extra = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_B_ENV", "").split(",") if kv)
    apps = {k: serve(trees[k], {**env_for(trees[k], urls[k], tmp), **(extra if k == "b" else {})},
                     tmp / f"{label}-{k}.log")
            for k in ("a", "b")}
    script = ROOT / "bench" / "signup.lua"
    figures: dict[str, list[float]] = {"bare": [], "a": [], "b": []}
    cpus: dict[str, list[float]] = {"bare": [], "a": [], "b": []}
    try:
        for _ in range(ROUNDS):
            figures["bare"].append(measured(bare, bare.url + "/", cpus["bare"]))
            for k in ("a", "b"):
                figures[k].append(measured(apps[k], apps[k].url + "/free-plan", cpus[k], script))
    except SystemExit:
        for k in ("a", "b"):  # the server's own words on what failed
            print(f"--- tree {k.upper()} log:", *(tmp / f"{label}-{k}.log").read_text()
                  .splitlines()[-15:], sep="\n")
        raise
    finally:
        bare.stop()
        for s in apps.values():
            s.stop()
    med = {k: statistics.median(v) for k, v in figures.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    print(f"bare flask page ({label}): {med['bare']:.0f} req/s (1.00 x baseline), "
          f"{cpu['bare']:.0f} µs of the workers' CPU a request; "
          f"runs {', '.join(f'{v:.0f}' for v in figures['bare'])}")
    for k in ("a", "b"):
        print(f"sign-up POST, tree {k.upper()} {trees[k]} ({label}): {med[k]:.0f} req/s "
              f"({med[k] / med['bare']:.3f} x baseline), {cpu[k]:.0f} µs "
              f"({cpu['bare'] / cpu[k]:.2f} x baseline); "
              f"runs {', '.join(f'{v:.0f}' for v in figures[k])}")
    print(f"  B / A ({label}): {med['b'] / med['a']:.2f} in rate, {cpu['a'] / cpu['b']:.2f} in CPU")


def main() -> None:
    trees = {"a": Path(sys.argv[1]).resolve(),
             "b": Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else ROOT}
    secs = os.environ.get("BENCH_SECONDS", "5")
    if os.environ.get("BENCH_B_ENV"):
        print(f"tree B with {os.environ['BENCH_B_ENV']}")
    threads = f" x {THREADS} threads" if WORKERS == "gthread" else ""
    print(f"sign-up A/B: gunicorn 2 {WORKERS} workers{threads}, wrk -t2 -c32 -d{secs}s, median of {ROUNDS}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for db in os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(","):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            if db == "sqlite":
                urls = {k: f"sqlite:///{tmp}/{k}.db" for k in ("a", "b")}
            else:
                pg = {k: postgres_url(f"_{k}") for k in ("a", "b")}
                if None in pg.values():
                    continue
                urls = {k: str(v) for k, v in pg.items()}
            run("SQLite" if db == "sqlite" else "PostgreSQL", urls, trees, tmp)
    print(f"  (load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
