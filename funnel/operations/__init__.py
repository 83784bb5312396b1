"""The operator's side: logs, health, start-up checks and backups.

- ``logs`` and ``gunicorn_log``: log lines with no personal data, for the app and gunicorn;
- ``health``: ``/readyz`` and ``flask --app funnel status`` (``funnel.metrics`` holds what
  ``/metrics`` exports; ``funnel.web.ops`` puts all of it into the app);
- ``preflight`` and ``production``: what stops a start with one clear line;
- ``backup``: an online backup of a SQLite database.
"""
