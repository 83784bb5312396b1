"""gunicorn settings for funnel's web processes.

    gunicorn -c deploy/gunicorn.conf.py wsgi:app

Every value can be changed from the environment (names below); the systemd unit
deploy/funnel-web.service uses this file as it is.
"""

import multiprocessing
import os
import sys

from funnel.operations.gunicorn_log import ACCESS_FORMAT

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: each request is short (no email is sent inside a request).
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Threads: a sign-up waits on its commit's flush to disk, and the requests that
# wait together share one commit (funnel/subscribers/intake_writer.py); with sync
# workers each waited for its own (issue 28: 0.21x the bare page). Each waiting
# sign-up holds a thread, so the threads bound how many share a flush: with 4, a
# process shares one among 4 sign-ups at most, which caps sign-ups whenever the
# disk is slow (docs/million.md, Sign-ups). A waiting thread costs no CPU, and the
# database pool (15 a process) is only held by requests that use it.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# A request that takes longer than this is killed and restarted. The database
# waits (SQLITE_BUSY_TIMEOUT, the PostgreSQL connect timeout) are well below it,
# so an unreachable database gives a 503 page, not a killed worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, requests in progress get this long to finish before workers are killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then so a slow leak never grows into an outage.
max_requests = 1000
max_requests_jitter = 100
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # gunicorn's worker heartbeat files; avoids a slow disk

proc_name = "funnel-web"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Redacts personal-link tokens, query strings and addresses; JSON with LOG_FORMAT=json.
logger_class = "funnel.operations.gunicorn_log.Logger"
access_log_format = ACCESS_FORMAT


def on_starting(server):  # type: ignore[no-untyped-def]
    """Refuse to start, with one line, when the configuration cannot work."""
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        os.makedirs(multiproc, exist_ok=True)
    from funnel import create_app
    from funnel.config import ConfigError
    from funnel.operations import preflight

    try:
        app = create_app()
    except (ConfigError, ValueError) as exc:
        _refuse(str(exc))
    app.extensions["funnel"].engine.dispose()
    found = preflight.problems(app.config)
    if found:
        _refuse("; ".join(found))


def _refuse(message: str) -> None:
    print(f"funnel: cannot start: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from funnel.operations.scrape import mark_process_dead

    mark_process_dead(worker.pid)


# Page views are buffered per process (funnel/web/visits.py): write them when a
# worker stops or is recycled by max_requests, not only at interpreter exit.
from funnel.web.public.visits import worker_exit  # noqa: E402,F401
