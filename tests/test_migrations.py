"""The migrations build exactly the schema the models describe, and it refuses bad states."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from funnel.models import Base


def test_models_and_migrations_do_not_drift(app, db_url):
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ (write a migration): {diff}"


@pytest.mark.parametrize("table, column, insert", [
    ("subscriber", "status",
     "INSERT INTO subscriber (public_id, email, status, timezone, created_at) "
     "VALUES ('p1', 'a@example.com', :bad, 'UTC', :now)"),
    ("visit", "page", "INSERT INTO visit (page, at) VALUES (:bad, :now)"),
])
def test_the_database_refuses_an_unknown_state(app, db_url, table, column, insert):
    engine = create_engine(db_url)
    now = datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None)
    with engine.connect() as conn:
        with pytest.raises(IntegrityError, match=f"ck_{table}_{column}"):
            conn.execute(text(insert), {"bad": "confirmd", "now": now})
        conn.rollback()
        good = {"subscriber": "confirmed", "visit": "article"}[table]
        conn.execute(text(insert), {"bad": good, "now": now})  # the negative control
        conn.rollback()
    engine.dispose()


def _values(sqltext: str) -> set[str]:
    import re

    return set(re.findall(r"'([^']*)'", sqltext))


def test_check_constraints_match_the_constants(app, db_url):
    """Alembic's autogenerate does not see CHECK constraints: compare them here, so a
    new state added to funnel.core.states without a migration fails this test."""
    from sqlalchemy import CheckConstraint, inspect

    engine = create_engine(db_url)
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        wanted = {c.name: _values(str(c.sqltext)) for c in table.constraints
                  if isinstance(c, CheckConstraint)}
        found = {c["name"]: _values(c["sqltext"]) for c in inspector.get_check_constraints(table.name)}
        for name, values in wanted.items():
            assert name in found, f"{table.name}: no CHECK constraint {name} in the database"
            assert found[name] == values, f"{table.name}.{name}: {found[name]} != {values}"
    engine.dispose()
