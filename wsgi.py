"""Entry point for a production WSGI server, e.g. ``gunicorn wsgi:app``."""

from funnel import create_app

app = create_app()
