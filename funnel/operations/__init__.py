"""The operator's side: logs, health, metrics, start-up checks and backups.

- ``wiring``: ``init_app`` puts logs, health, metrics and the 503 page into the app,
  and times and counts the transport;
- ``logs`` and ``gunicorn_log``: log lines with no personal data, for the app and gunicorn;
- ``health`` and ``metrics``: ``/readyz``, ``flask --app funnel status`` and ``/metrics``;
- ``preflight`` and ``production``: what stops a start with one clear line;
- ``backup``: an online backup of a SQLite database.
"""
