"""``flask --app funnel tags add|remove|list``: tags from the terminal."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from funnel import tagging
from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.states import TagSource
from funnel.models import Subscriber
from funnel.runtime import rt as _rt

tags_cli = AppGroup("tags", help="Tags on subscribers: add, remove, list.")


def _addresses(emails: tuple[str, ...], from_file: Path | None) -> list[str]:
    """Every address given, normalised; a bad one stops the command before any change."""
    raw = list(emails)
    if from_file is not None:
        try:
            text = from_file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{from_file.name} is not UTF-8 text; nothing "
                                       "was changed.") from exc
        raw += [line.strip() for line in text.splitlines() if line.strip()]
    if not raw:
        raise click.UsageError("Give at least one address (or --from-file FILE).")
    out: list[str] = []
    for address in raw:
        try:
            out.append(normalise_email(address))
        except FunnelError as exc:
            raise click.ClickException(f"{address[:80]!r}: {exc} Nothing was changed.") from exc
    return list(dict.fromkeys(out))


def _who(s, addresses: list[str]) -> tuple[list[int], list[str]]:
    found = {email: sid for email, sid in s.execute(
        select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(addresses)))}
    return list(found.values()), [a for a in addresses if a not in found]


def _tag(tag: str) -> str:
    try:
        return tagging.parse_tag(tag)
    except FunnelError as exc:
        raise click.ClickException(f"{exc} Nothing was changed.") from exc


@tags_cli.command("add")
@click.argument("tag")
@click.argument("emails", nargs=-1)
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file with one address per line (e.g. a race's entrants).")
@click.option("--reason", default=None, help="Why: shown with the tag on the subscriber's page.")
def add_command(tag: str, emails: tuple[str, ...], from_file: Path | None,
                reason: str | None) -> None:
    """Add TAG to each address (people who have it keep their first date)."""
    tag = _tag(tag)
    try:
        reason = tagging.clean_reason(reason)
    except FunnelError as exc:
        raise click.ClickException(f"{exc} Nothing was changed.") from exc
    addresses = _addresses(emails, from_file)
    rt = _rt()
    with rt.sessions() as s:
        ids, unknown = _who(s, addresses)
        added = tagging.add_tag_where(s, tag, select(Subscriber.id).where(Subscriber.id.in_(ids)),
                                      now=rt.clock(), source=TagSource.CLI, reason=reason)
        s.commit()
    click.echo(f"{tag}: added to {added}, {len(ids) - added} had it already, "
               f"{len(unknown)} not on the list")
    for address in unknown[:20]:
        click.echo(f"  not on the list: {address}")


@tags_cli.command("remove")
@click.argument("tag")
@click.argument("emails", nargs=-1)
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def remove_command(tag: str, emails: tuple[str, ...], from_file: Path | None) -> None:
    """Take TAG off each address."""
    tag = _tag(tag)
    addresses = _addresses(emails, from_file)
    rt = _rt()
    with rt.sessions() as s:
        ids, unknown = _who(s, addresses)
        removed = tagging.remove_tag_where(
            s, tag, select(Subscriber.id).where(Subscriber.id.in_(ids)))
        s.commit()
    click.echo(f"{tag}: removed from {removed}, {len(ids) - removed} did not have it, "
               f"{len(unknown)} not on the list")


@tags_cli.command("list")
@click.argument("email", required=False)
def list_command(email: str | None) -> None:
    """Every tag with how many have it; with EMAIL, that person's tags."""
    rt = _rt()
    with rt.sessions() as s:
        if email is None:
            counts = tagging.tag_counts(s)
            for tag, n in counts:
                click.echo(f"{tag}\t{n}")
            if not counts:
                click.echo("no tags yet")
            return
        address = _addresses((email,), None)[0]
        ids, _unknown = _who(s, [address])
        if not ids:
            raise click.ClickException(f"{address} is not on the list.")
        for info in tagging.tags_of(s, ids[0]):
            click.echo(f"{info.tag}\t{info.added_at.isoformat()}\t{info.source}\t"
                       f"{info.reason or ''}")
