"""The triggers that keep the dashboard's figures, generated for SQLite and
PostgreSQL from their declaration in ``funnel.reporting.figures``.

A migration freezes what this generates (the kept figures: kept_pg and kept_lite) (0009 and 0010 hold the DDL in force):
``tests/test_kept_figures_declared.py`` fails while the generated DDL differs from
the frozen one, so a change to a figure's declaration comes with a migration that
drops the old triggers and creates the new ones. Nothing here runs at start-up.

Statement-level triggers with transition tables on PostgreSQL (a bulk statement
costs one aggregate, not one call per row); row triggers on SQLite, whose single
writer orders concurrent changes. Each change appends delta rows, so concurrent
transactions never wait on one hot counter row; ``tallies.compact`` folds them.
"""

# The SQL below is built by string formatting from constants of this package, never
# from input: there is nothing a user can put into it.
from __future__ import annotations

from funnel.reporting.figures import (
    BITS,
    GROUP_BITS,
    TALLY_COLUMNS,
    VISIT_KEYS,
)
from funnel.reporting.kept_lite import Lite
from funnel.reporting.kept_pg import Pg


def ddl(dialect: str) -> list[str]:
    """Every trigger and trigger function the figures need, in creation order."""
    if dialect == "postgresql":
        return _tallies_pg() + Pg().ddl()
    return _tallies_lite() + Lite().ddl()


def _contribution(row: str, sign: str, day: str) -> str:
    """A delivery row's part of step_tally: (day, kind, step, sent, one per group)."""
    groups = ", ".join(f"{sign} * (CASE WHEN ({row}.engaged & {bit}) <> 0 THEN 1 ELSE 0 END)"
                       for bit in GROUP_BITS.values())
    return f"{day}, {row}.kind, {row}.step_slug, {sign}, {groups}"


def _tallies_pg() -> list[str]:
    # Statement-level triggers with transition tables: a bulk statement (the seed,
    # erasure, an import) costs one aggregate, not one call per row.
    qualifies = "{r}.state = 'sent' AND {r}.sent_at IS NOT NULL"
    day = "CAST(timezone('UTC', {r}.sent_at) AS date)"
    sums = ", ".join(f"SUM({c})" for c in ["sent", *GROUP_BITS])
    nonzero = " OR ".join(f"SUM({c}) <> 0" for c in ["sent", *GROUP_BITS])

    def part(table: str, sign: str) -> str:
        r = "r"
        return (f"SELECT {_contribution(r, sign, day.format(r=r))} FROM {table} {r} "
                f"WHERE {qualifies.format(r=r)}")

    def tally(*parts: str) -> str:
        return (f"INSERT INTO step_tally ({TALLY_COLUMNS}) "
                f"SELECT day, kind, step_slug, {sums} FROM ("
                + " UNION ALL ".join(parts)
                + f") AS c (day, kind, step_slug, sent, {', '.join(GROUP_BITS)}) "
                f"GROUP BY day, kind, step_slug HAVING {nonzero};")

    bit = _bit_case("e.kind")
    return [
        """
        CREATE FUNCTION funnel_status_tally() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO status_tally (status, n)
                SELECT status, COUNT(*) FROM new_rows GROUP BY status;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO status_tally (status, n)
                SELECT status, -COUNT(*) FROM old_rows GROUP BY status;
            ELSE
                INSERT INTO status_tally (status, n)
                SELECT status, SUM(n) FROM (
                    SELECT status, -1 AS n FROM old_rows
                    UNION ALL SELECT status, 1 FROM new_rows) AS c
                GROUP BY status HAVING SUM(n) <> 0;
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION funnel_step_tally() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {tally(part("new_rows", "1"))}
            ELSIF TG_OP = 'DELETE' THEN
                {tally(part("old_rows", "-1"))}
            ELSE
                {tally(part("old_rows", "-1"), part("new_rows", "1"))}
            END IF;
            RETURN NULL;
        END $$
        """,
        # New events only add bits, and "engaged | bits" is evaluated again on the
        # newest row version when a concurrent event held the lock: nothing is lost.
        # Rows are locked in id order first, so two webhook batches cannot deadlock.
        f"""
        CREATE FUNCTION funnel_event_bits() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                PERFORM 1 FROM delivery WHERE id IN (
                    SELECT delivery_id FROM new_rows) ORDER BY id FOR UPDATE;
                UPDATE delivery d SET engaged = d.engaged | b.bits
                FROM (SELECT e.delivery_id, bit_or({bit}) AS bits FROM new_rows e
                      WHERE e.delivery_id IS NOT NULL GROUP BY e.delivery_id) AS b
                WHERE d.id = b.delivery_id AND (d.engaged | b.bits) <> d.engaged;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE delivery d SET engaged = COALESCE((
                    SELECT bit_or({bit}) FROM delivery_event e WHERE e.delivery_id = d.id), 0)
                WHERE d.id IN (SELECT delivery_id FROM old_rows);
            ELSE
                UPDATE delivery d SET engaged = COALESCE((
                    SELECT bit_or({bit}) FROM delivery_event e WHERE e.delivery_id = d.id), 0)
                WHERE d.id IN (SELECT delivery_id FROM old_rows
                               UNION SELECT delivery_id FROM new_rows);
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION funnel_visit_tally() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO visit_tally (day, {VISIT_KEYS}, n)
                SELECT CAST(timezone('UTC', at) AS date), {VISIT_KEYS}, COUNT(*) FROM new_rows
                GROUP BY 1, {VISIT_KEYS};
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO visit_tally (day, {VISIT_KEYS}, n)
                SELECT CAST(timezone('UTC', at) AS date), {VISIT_KEYS}, -COUNT(*) FROM old_rows
                GROUP BY 1, {VISIT_KEYS};
            ELSE
                INSERT INTO visit_tally (day, {VISIT_KEYS}, n)
                SELECT day, {VISIT_KEYS}, SUM(n) FROM (
                    SELECT CAST(timezone('UTC', at) AS date) AS day, {VISIT_KEYS}, -1 AS n
                    FROM old_rows
                    UNION ALL SELECT CAST(timezone('UTC', at) AS date), {VISIT_KEYS}, 1
                    FROM new_rows) AS c
                GROUP BY day, {VISIT_KEYS} HAVING SUM(n) <> 0;
            END IF;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER visit_tally_insert AFTER INSERT ON visit "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_visit_tally()",
        "CREATE TRIGGER visit_tally_update AFTER UPDATE ON visit "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION funnel_visit_tally()",
        "CREATE TRIGGER visit_tally_delete AFTER DELETE ON visit "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_visit_tally()",
        "CREATE TRIGGER status_tally_insert AFTER INSERT ON subscriber "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_status_tally()",
        "CREATE TRIGGER status_tally_update AFTER UPDATE ON subscriber "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION funnel_status_tally()",
        "CREATE TRIGGER status_tally_delete AFTER DELETE ON subscriber "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_status_tally()",
        "CREATE TRIGGER step_tally_insert AFTER INSERT ON delivery "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_step_tally()",
        "CREATE TRIGGER step_tally_update AFTER UPDATE ON delivery "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION funnel_step_tally()",
        "CREATE TRIGGER step_tally_delete AFTER DELETE ON delivery "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_step_tally()",
        "CREATE TRIGGER event_bits_insert AFTER INSERT ON delivery_event "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_event_bits()",
        "CREATE TRIGGER event_bits_update AFTER UPDATE ON delivery_event "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION funnel_event_bits()",
        "CREATE TRIGGER event_bits_delete AFTER DELETE ON delivery_event "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_event_bits()",
    ]


def _tallies_lite() -> list[str]:
    # SQLite has row triggers only; its single writer orders concurrent changes.
    # Alembic's batch mode copies a table on SQLite and loses its triggers: a later
    # migration that rebuilds subscriber, delivery or delivery_event must make them again.
    qualifies = "{r}.state = 'sent' AND {r}.sent_at IS NOT NULL"
    day = "substr({r}.sent_at, 1, 10)"

    def row(r: str, sign: str) -> str:
        return (f"INSERT INTO step_tally ({TALLY_COLUMNS}) "
                f"SELECT {_contribution(r, sign, day.format(r=r))} "
                f"WHERE {qualifies.format(r=r)};")

    bit = _bit_case("NEW.kind")
    recount = ("COALESCE((SELECT SUM(DISTINCT " + _bit_case("e.kind") + ") FROM delivery_event e "
               "WHERE e.delivery_id = delivery.id), 0)")
    def visit(r: str, sign: str) -> str:
        keys = ", ".join(f"{r}.{k.strip()}" for k in VISIT_KEYS.split(","))
        return (f"INSERT INTO visit_tally (day, {VISIT_KEYS}, n) "
                f"VALUES (substr({r}.at, 1, 10), {keys}, {sign});")

    return [
        f"CREATE TRIGGER visit_tally_insert AFTER INSERT ON visit BEGIN {visit('NEW', '1')} END",
        f"CREATE TRIGGER visit_tally_update AFTER UPDATE ON visit BEGIN {visit('OLD', '-1')} "
        f"{visit('NEW', '1')} END",
        f"CREATE TRIGGER visit_tally_delete AFTER DELETE ON visit BEGIN {visit('OLD', '-1')} END",
        "CREATE TRIGGER status_tally_insert AFTER INSERT ON subscriber BEGIN "
        "INSERT INTO status_tally (status, n) VALUES (NEW.status, 1); END",
        "CREATE TRIGGER status_tally_update AFTER UPDATE OF status ON subscriber "
        "WHEN OLD.status IS NOT NEW.status BEGIN "
        "INSERT INTO status_tally (status, n) VALUES (OLD.status, -1), (NEW.status, 1); END",
        "CREATE TRIGGER status_tally_delete AFTER DELETE ON subscriber BEGIN "
        "INSERT INTO status_tally (status, n) VALUES (OLD.status, -1); END",
        f"CREATE TRIGGER step_tally_insert AFTER INSERT ON delivery BEGIN {row('NEW', '1')} END",
        "CREATE TRIGGER step_tally_update AFTER UPDATE OF state, sent_at, kind, step_slug, engaged "
        "ON delivery WHEN OLD.state IS NOT NEW.state OR OLD.sent_at IS NOT NEW.sent_at "
        "OR OLD.kind IS NOT NEW.kind OR OLD.step_slug IS NOT NEW.step_slug "
        f"OR OLD.engaged IS NOT NEW.engaged BEGIN {row('OLD', '-1')} {row('NEW', '1')} END",
        f"CREATE TRIGGER step_tally_delete AFTER DELETE ON delivery BEGIN {row('OLD', '-1')} END",
        "CREATE TRIGGER event_bits_insert AFTER INSERT ON delivery_event "
        f"WHEN NEW.delivery_id IS NOT NULL BEGIN UPDATE delivery SET engaged = engaged | ({bit}) "
        f"WHERE id = NEW.delivery_id AND (engaged | ({bit})) <> engaged; END",
        "CREATE TRIGGER event_bits_update AFTER UPDATE OF delivery_id, kind ON delivery_event BEGIN "
        f"UPDATE delivery SET engaged = {recount} "
        "WHERE id IN (OLD.delivery_id, NEW.delivery_id); END",
        "CREATE TRIGGER event_bits_delete AFTER DELETE ON delivery_event "
        f"WHEN OLD.delivery_id IS NOT NULL BEGIN UPDATE delivery SET engaged = {recount} "
        "WHERE id = OLD.delivery_id; END",
    ]


def _bit_case(column: str) -> str:
    whens = " ".join(f"WHEN '{kind}' THEN {bit}" for kind, bit in BITS.items())
    return f"CASE {column} {whens} ELSE 0 END"


def _bit_sums() -> str:
    return ", ".join(f"SUM(CASE WHEN (engaged & {bit}) <> 0 THEN 1 ELSE 0 END)"
                     for bit in GROUP_BITS.values())


