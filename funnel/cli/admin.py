"""``flask --app funnel admin …``: dashboard accounts."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select

from funnel.accounts.passwords import MIN_LENGTH, hash_password
from funnel.core.inputs import FunnelError, normalise_email
from funnel.models import AdminUser
from funnel.runtime import rt as _rt

admin_cli = AppGroup("admin", help="Admin accounts.")


@admin_cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
def admin_create(email: str, password_stdin: bool) -> None:
    """Create an admin account, or reset its password (which logs it out everywhere).

    The password is asked for, never given as an option: options end up in shell
    history and in the process list."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password (at least 10 characters)", hide_input=True,
                                confirmation_prompt=True)
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
            # Every session cookie made under the old password stops working.
            admin.session_version = (admin.session_version or 0) + 1
            verb = "updated"
        s.commit()
    click.echo(f"admin {address} {verb}")



@admin_cli.command("reset-2fa")
@click.argument("email")
def admin_reset_2fa(email: str) -> None:
    """Turn two-factor sign-in off for an account that lost its phone and its
    recovery codes (it is logged out everywhere; it sets it up again at sign-in
    when ADMIN_REQUIRE_2FA=1). Shell access is the proof of who asks."""
    try:
        address = normalise_email(email)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    rt = _rt()
    with rt.sessions() as s:
        admin = s.scalar(select(AdminUser).where(AdminUser.email == address))
        if admin is None:
            raise click.ClickException(f"no admin account {address}")
        admin.totp_secret = admin.totp_enabled_at = admin.recovery_hashes = None
        admin.totp_last_step = None
        admin.session_version = (admin.session_version or 0) + 1
        s.commit()
    click.echo(f"two-factor sign-in turned off for {address}")
