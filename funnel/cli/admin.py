"""``flask --app funnel admin …``: dashboard accounts."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from funnel.inputs import FunnelError, normalise_email
from funnel.models import AdminUser
from funnel.passwords import MIN_LENGTH, hash_password
from funnel.runtime import rt as _rt

admin_cli = AppGroup("admin", help="Admin accounts.")


@admin_cli.command("create")
@click.argument("email")
@click.password_option(help="Asked for when not given; at least 10 characters.")
def admin_create(email: str, password: str) -> None:
    """Create an admin account, or reset its password."""
    try:
        address = normalise_email(email)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    if len(password) < MIN_LENGTH:
        raise click.ClickException(f"the password must be at least {MIN_LENGTH} characters")
    rt = _rt()
    with rt.sessions() as s:
        admin = s.scalar(select(AdminUser).where(AdminUser.email == address))
        if admin is None:
            s.add(AdminUser(email=address, password_hash=hash_password(password),
                            created_at=rt.clock()))
            verb = "created"
        else:
            admin.password_hash = hash_password(password)
            verb = "updated"
        s.commit()
    click.echo(f"admin {address} {verb}")


