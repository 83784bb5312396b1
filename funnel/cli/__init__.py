"""Command line: ``flask --app funnel …``, one module per command group."""

from __future__ import annotations

from flask import Flask

from funnel.cli.admin import admin_cli
from funnel.cli.broadcast import broadcast_cli
from funnel.cli.connect import api_key_cli, webhooks_cli
from funnel.cli.db import db_cli
from funnel.cli.deliverability import deliverability_cli
from funnel.cli.demo import demo_cli
from funnel.cli.emails import emails_cli
from funnel.cli.status import status_command
from funnel.cli.subscribers import subscribers_cli
from funnel.cli.worker import (
    schedule_command,
    sequence_command,
    serve_command,
    worker_command,
)


def init_app(app: Flask) -> None:
    for command in (admin_cli, broadcast_cli, db_cli, demo_cli, emails_cli, subscribers_cli, worker_command,
                    sequence_command, schedule_command, serve_command, status_command, api_key_cli,
                    webhooks_cli, deliverability_cli):
        app.cli.add_command(command)
