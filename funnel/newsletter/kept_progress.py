"""A newsletter issue's progress, kept as the rows change: its readers per outcome
and its emails per settled delivery state, as delta rows of ``broadcast_tally``.

Counting them on each load read every reader and every email of the issue (66 to
91 ms at 100,000 readers while sending, ten times that at a million). Triggers
append the deltas in the transaction of each change, whatever makes it (the
worker's batches, scheduling, a cancel, an erasure's cascade), on SQLite and
PostgreSQL, so a sum always equals a recount of the rows; ``tallies.compact``
folds them. Migration 0025 freezes this DDL (``tests/test_broadcast_progress_kept.py``
fails while they differ).

On PostgreSQL the readers' triggers are statement-level with transition tables:
scheduling writes a million rows in one statement and a cancel settles them in
one, each a single aggregate. The emails' triggers are row-level with a WHEN, so
the drip's and system mail's writes never call them; the worker writes a
broadcast's deliveries one row at a time anyway. Only settled states are kept
(what the page shows): the intent written before each send adds nothing.

A reader's row is counted under its issue's slug, read from ``broadcast``:
broadcasts are never deleted (a delete would cascade to its readers after the
slug is gone and leave their counts behind).
"""

# Built by string formatting from constants, never from input.
from __future__ import annotations

from funnel.core.states import SETTLED, WAITING, DeliveryKind, ProgressPart

RECIPIENT, DELIVERY = str(ProgressPart.RECIPIENT), str(ProgressPart.DELIVERY)
BROADCAST = str(DeliveryKind.BROADCAST)
_SETTLED = ", ".join(f"'{s}'" for s in SETTLED)
COLUMNS = "slug, part, value, n"
TRIGGERS = (
    ("broadcast_recipient", "broadcast_progress_recipient_insert"),
    ("broadcast_recipient", "broadcast_progress_recipient_update"),
    ("broadcast_recipient", "broadcast_progress_recipient_delete"),
    ("delivery", "broadcast_progress_delivery_insert"),
    ("delivery", "broadcast_progress_delivery_update"),
    ("delivery", "broadcast_progress_delivery_delete"),
)
FUNCTIONS = ("funnel_broadcast_progress_recipients", "funnel_broadcast_progress_delivery")


def ddl(dialect: str) -> list[str]:
    """The triggers (and on PostgreSQL their functions), in creation order."""
    return _pg() if dialect == "postgresql" else _lite()


def drop_ddl(dialect: str) -> list[str]:
    out = [f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if dialect == "postgresql" else "")
           for table, name in TRIGGERS]
    if dialect == "postgresql":
        out += [f"DROP FUNCTION IF EXISTS {name}()" for name in FUNCTIONS]
    return out


def backfill() -> list[str]:
    """The counts of the rows already there (both dialects)."""
    return [
        f"INSERT INTO broadcast_tally ({COLUMNS}) "
        f"SELECT b.slug, '{RECIPIENT}', COALESCE(r.outcome, '{WAITING}'), COUNT(*) "
        "FROM broadcast_recipient r JOIN broadcast b ON b.id = r.broadcast_id "
        f"GROUP BY b.slug, COALESCE(r.outcome, '{WAITING}')",
        f"INSERT INTO broadcast_tally ({COLUMNS}) "
        f"SELECT step_slug, '{DELIVERY}', state, COUNT(*) FROM delivery "
        f"WHERE kind = '{BROADCAST}' AND state IN ({_SETTLED}) GROUP BY step_slug, state",
    ]


def _readers(rows: str, sign: str) -> str:
    return (f"SELECT r.broadcast_id, COALESCE(r.outcome, '{WAITING}') AS value, {sign} AS n "
            f"FROM {rows} r")


def _readers_tally(*parts: str) -> str:
    return (f"INSERT INTO broadcast_tally ({COLUMNS}) "
            f"SELECT b.slug, '{RECIPIENT}', c.value, SUM(c.n) FROM ("
            + " UNION ALL ".join(parts)
            + ") AS c JOIN broadcast b ON b.id = c.broadcast_id "
            "GROUP BY b.slug, c.value HAVING SUM(c.n) <> 0;")


def _pg() -> list[str]:
    kept = f"{{r}}.kind = '{BROADCAST}' AND {{r}}.state IN ({_SETTLED})"
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in ("state", "kind", "step_slug"))
    return [
        f"""
        CREATE FUNCTION funnel_broadcast_progress_recipients() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_readers_tally(_readers("new_rows", "1"))}
            ELSIF TG_OP = 'DELETE' THEN
                {_readers_tally(_readers("old_rows", "-1"))}
            ELSE
                {_readers_tally(_readers("old_rows", "-1"), _readers("new_rows", "1"))}
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION funnel_broadcast_progress_delivery() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                IF {kept.format(r="OLD")} THEN
                    INSERT INTO broadcast_tally ({COLUMNS})
                    VALUES (OLD.step_slug, '{DELIVERY}', OLD.state, -1);
                END IF;
            END IF;
            IF TG_OP IN ('UPDATE', 'INSERT') THEN
                IF {kept.format(r="NEW")} THEN
                    INSERT INTO broadcast_tally ({COLUMNS})
                    VALUES (NEW.step_slug, '{DELIVERY}', NEW.state, 1);
                END IF;
            END IF;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER broadcast_progress_recipient_insert AFTER INSERT ON broadcast_recipient "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION funnel_broadcast_progress_recipients()",
        "CREATE TRIGGER broadcast_progress_recipient_update AFTER UPDATE ON broadcast_recipient "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION funnel_broadcast_progress_recipients()",
        "CREATE TRIGGER broadcast_progress_recipient_delete AFTER DELETE ON broadcast_recipient "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION funnel_broadcast_progress_recipients()",
        "CREATE TRIGGER broadcast_progress_delivery_insert AFTER INSERT ON delivery FOR EACH ROW "
        f"WHEN ({kept.format(r='NEW')}) EXECUTE FUNCTION funnel_broadcast_progress_delivery()",
        "CREATE TRIGGER broadcast_progress_delivery_update AFTER UPDATE OF state, kind, step_slug "
        f"ON delivery FOR EACH ROW WHEN (({kept.format(r='OLD')} OR {kept.format(r='NEW')}) "
        f"AND ({changed})) EXECUTE FUNCTION funnel_broadcast_progress_delivery()",
        "CREATE TRIGGER broadcast_progress_delivery_delete AFTER DELETE ON delivery FOR EACH ROW "
        f"WHEN ({kept.format(r='OLD')}) EXECUTE FUNCTION funnel_broadcast_progress_delivery()",
    ]


def _lite() -> list[str]:
    # Row triggers (SQLite has no others); its single writer orders concurrent changes.
    kept = f"{{r}}.kind = '{BROADCAST}' AND {{r}}.state IN ({_SETTLED})"

    def reader(r: str, sign: str) -> str:
        return (f"INSERT INTO broadcast_tally ({COLUMNS}) "
                f"SELECT b.slug, '{RECIPIENT}', COALESCE({r}.outcome, '{WAITING}'), {sign} "
                f"FROM broadcast b WHERE b.id = {r}.broadcast_id;")

    def email(r: str, sign: str) -> str:
        return (f"INSERT INTO broadcast_tally ({COLUMNS}) "
                f"SELECT {r}.step_slug, '{DELIVERY}', {r}.state, {sign} WHERE {kept.format(r=r)};")

    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ("state", "kind", "step_slug"))
    return [
        "CREATE TRIGGER broadcast_progress_recipient_insert AFTER INSERT ON broadcast_recipient "
        f"BEGIN {reader('NEW', '1')} END",
        "CREATE TRIGGER broadcast_progress_recipient_update AFTER UPDATE OF outcome, broadcast_id "
        "ON broadcast_recipient WHEN OLD.outcome IS NOT NEW.outcome "
        f"OR OLD.broadcast_id IS NOT NEW.broadcast_id BEGIN {reader('OLD', '-1')} "
        f"{reader('NEW', '1')} END",
        "CREATE TRIGGER broadcast_progress_recipient_delete AFTER DELETE ON broadcast_recipient "
        f"BEGIN {reader('OLD', '-1')} END",
        f"CREATE TRIGGER broadcast_progress_delivery_insert AFTER INSERT ON delivery "
        f"WHEN {kept.format(r='NEW')} BEGIN {email('NEW', '1')} END",
        "CREATE TRIGGER broadcast_progress_delivery_update AFTER UPDATE OF state, kind, step_slug "
        f"ON delivery WHEN ({kept.format(r='OLD')} OR {kept.format(r='NEW')}) AND ({changed}) "
        f"BEGIN {email('OLD', '-1')} {email('NEW', '1')} END",
        "CREATE TRIGGER broadcast_progress_delivery_delete AFTER DELETE ON delivery "
        f"WHEN {kept.format(r='OLD')} BEGIN {email('OLD', '-1')} END",
    ]
