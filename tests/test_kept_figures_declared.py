"""Each kept figure is declared once (funnel.reporting.figures); its triggers are
generated from that declaration and frozen by the migrations that create them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import func, select

from funnel.accounts import api_keys
from funnel.models import ConsentRecord, Subscriber
from funnel.reporting import figures, triggers
from tests.conftest import post_signup, take_in

VERSIONS = Path(__file__).resolve().parent.parent / "funnel" / "migrations" / "versions"


def migration(name: str):
    spec = importlib.util.spec_from_file_location(f"frozen_{name}", VERSIONS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def frozen(dialect: str) -> list[str]:
    """The trigger DDL the migrations run, in order (0009 made the tallies, 0010 the
    kept figures)."""
    tallies, kept = migration("0009_tallies"), migration("0010_kept_figures")
    if dialect == "postgresql":
        return tallies.postgres_ddl() + kept.Pg().ddl()
    return tallies.sqlite_ddl() + kept.Lite().ddl()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_declared_figures_generate_exactly_the_frozen_triggers(dialect):
    # Changing a figure's declaration fails here until a migration freezes the new DDL.
    assert triggers.ddl(dialect) == frozen(dialect)


def test_changing_a_declaration_changes_the_generated_triggers(monkeypatch):
    before = triggers.ddl("sqlite")
    monkeypatch.setitem(figures.BITS, "open", figures.GROUP_BITS["clicked"])
    assert triggers.ddl("sqlite") != before


def test_event_groups_and_bits_agree():
    assert set(figures.KIND_GROUP) == {k for kinds in figures.EVENT_GROUPS.values() for k in kinds}
    assert sorted(figures.GROUP_BITS.values()) == [1 << i for i in range(len(figures.GROUPS))]
    for kind, group in figures.KIND_GROUP.items():
        assert figures.BITS[kind] == figures.GROUP_BITS[group]


def test_the_api_reads_the_same_kept_figures_as_a_recount(app, client, db, clock):
    with app.extensions["funnel"].sessions() as s:
        key = api_keys.create_key(s, "figures", ["stats:read"], now=clock.now)[1]
        s.commit()
    for i in range(3):
        post_signup(client, f"f{i}@example.com")
    take_in(app)
    got = client.get("/api/v1/stats", headers={"Authorization": f"Bearer {key}"}).get_json()
    by_status = dict(db.execute(select(Subscriber.status, func.count())
                                .group_by(Subscriber.status)).all())
    assert {k: v for k, v in got["subscribers"].items() if v and k != "total"} == by_status
    signups = db.scalar(select(func.count(func.distinct(ConsentRecord.subscriber_id)))
                        .where(ConsentRecord.action == "signup"))
    assert got["last_30_days"]["signups"] == signups == 3
