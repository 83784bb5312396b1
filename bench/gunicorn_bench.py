"""gunicorn settings for the page benchmarks: the defaults plus the hook that
writes buffered page views when a worker stops (what production needs too)."""

from funnel.web.public.visits import worker_exit  # noqa: F401

accesslog = None
