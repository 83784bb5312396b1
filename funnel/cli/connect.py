"""``flask --app funnel api-key …`` and ``flask --app funnel webhooks …``."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel.accounts import api_keys as keys
from funnel.hooks import manage
from funnel.hooks.secret_box import box_from_config

api_key_cli = AppGroup("api-key", help="Keys for the JSON API (/api/v1).")
webhooks_cli = AppGroup("webhooks", help="Endpoints that are told about events.")


def _rt():
    return current_app.extensions["funnel"]


@api_key_cli.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE",
              help="subscribers:read, subscribers:write, subscribers:import, "
                   "subscribers:erase, stats:read, or all; repeat or comma-separate.")
def api_key_create(name: str, scopes: tuple[str, ...]) -> None:
    """Make a key. It is shown once: only a hash of it is kept."""
    rt = _rt()
    with rt.sessions() as s:
        try:
            key, full = keys.create_key(s, name, list(scopes), now=rt.clock())
        except keys.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"API key {key.name!r} ({key.scopes}); shown only this once:", err=True)
        click.echo(full)


@api_key_cli.command("list")
def api_key_list() -> None:
    """Keys by name, prefix and scopes (never the key itself)."""
    rt = _rt()
    with rt.sessions() as s:
        rows = keys.list_keys(s)
        if not rows:
            click.echo("no API keys")
        for k in rows:
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "live"
            used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
            click.echo(f"{k.name:<24} fk_{k.prefix}_…  {state:<18} last used {used:<16} {k.scopes}")


@api_key_cli.command("revoke")
@click.argument("name")
def api_key_revoke(name: str) -> None:
    """Revoke a key by its name (or prefix); it stops working at once."""
    rt = _rt()
    with rt.sessions() as s:
        try:
            key = keys.revoke(s, name, now=rt.clock())
        except keys.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"revoked {key.name}")


@webhooks_cli.command("add")
@click.argument("url")
@click.option("--events", "events", multiple=True, required=True, metavar="EVENTS",
              help="Event types (comma-separated or repeated), or all.")
def webhooks_add(url: str, events: tuple[str, ...]) -> None:
    """Register URL for EVENTS; prints its id and signing secret."""
    rt = _rt()
    with rt.sessions() as s:
        try:
            endpoint = manage.add_endpoint(
                s, url, events, now=rt.clock(),
                allow_private=current_app.config["WEBHOOKS_ALLOW_PRIVATE"],
                box=box_from_config(current_app.config))
        except manage.EndpointError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"endpoint {endpoint.id}: {endpoint.url} ({endpoint.events})")
        click.echo(f"signing secret: {endpoint.plain_secret}")


@webhooks_cli.command("list")
def webhooks_list() -> None:
    """Endpoints with their events and state."""
    rt = _rt()
    with rt.sessions() as s:
        rows = manage.endpoints(s)
        if not rows:
            click.echo("no webhook endpoints")
        for e in rows:
            note = f"  ({e.disabled_reason})" if e.disabled_reason else ""
            click.echo(f"{e.id:>3}  {e.state:<8} {e.url}  [{e.events}]{note}")


@webhooks_cli.command("remove")
@click.argument("endpoint_id", type=int)
def webhooks_remove(endpoint_id: int) -> None:
    """Delete an endpoint and what was waiting for it."""
    rt = _rt()
    with rt.sessions() as s:
        try:
            manage.remove_endpoint(s, endpoint_id)
        except manage.EndpointError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed endpoint {endpoint_id}")


@webhooks_cli.command("enable")
@click.argument("endpoint_id", type=int)
def webhooks_enable(endpoint_id: int) -> None:
    """Turn a disabled endpoint back on; what waited for it goes out."""
    rt = _rt()
    with rt.sessions() as s:
        try:
            manage.set_enabled(s, endpoint_id, True, now=rt.clock())
        except manage.EndpointError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"enabled endpoint {endpoint_id}")
