"""Tallies kept by triggers: subscribers per status, emails sent and engaged per day and step.

At a million subscribers, counting the list by status and joining a month of
deliveries with their events took seconds per dashboard load. Triggers keep the
counts in the same transaction as the change, whatever code path makes it (the
ORM, bulk statements, the seed, erasure's cascades), on SQLite and PostgreSQL.
Each change appends a delta row, so concurrent transactions never wait on one
hot counter row; ``funnel.tallies.compact`` folds the deltas together.

``delivery.engaged`` holds one bit per event group the delivery has had (see
``funnel.tallies.BITS``); a delivery's row lock orders concurrent events for it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table(
        "status_tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_tally")),
    )
    op.create_table(
        "step_tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("step_slug", sa.String(length=100), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("clicked", sa.Integer(), nullable=False),
        sa.Column("unsubscribed", sa.Integer(), nullable=False),
        sa.Column("bounced", sa.Integer(), nullable=False),
        sa.Column("complained", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_tally")),
    )
    with op.batch_alter_table("step_tally", schema=None) as batch_op:
        batch_op.create_index("ix_step_tally_day", ["day"], unique=False)
    op.create_table(
        "visit_tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("page", sa.String(length=32), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=True),
        sa.Column("referrer_host", sa.String(length=255), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_tally")),
    )
    with op.batch_alter_table("visit_tally", schema=None) as batch_op:
        batch_op.create_index("ix_visit_tally_day", ["day"], unique=False)
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engaged", sa.Integer(), server_default="0",
                                      nullable=False))
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index("ix_subscriber_unsubscribed_at", ["unsubscribed_at"], unique=False)
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_problems", ["state"], unique=False,
                              postgresql_where=sa.text("state IN ('failed', 'held')"),
                              sqlite_where=sa.text("state IN ('failed', 'held')"))
    if postgres:
        op.drop_index("ix_delivery_event_kind_at", table_name="delivery_event")
        op.create_index("ix_delivery_event_kind_at", "delivery_event", ["kind", "at"],
                        postgresql_include=["delivery_id"])
    # What is already there, counted once; the triggers keep it from here on.
    op.execute("""
        UPDATE delivery SET engaged = e.bits FROM (
            SELECT delivery_id, SUM(DISTINCT %s) AS bits FROM delivery_event
            WHERE delivery_id IS NOT NULL GROUP BY delivery_id) e
        WHERE delivery.id = e.delivery_id
    """ % _bit_case("kind"))
    op.execute("INSERT INTO status_tally (status, n) "
               "SELECT status, COUNT(*) FROM subscriber GROUP BY status")
    day = ("CAST(timezone('UTC', sent_at) AS date)" if postgres else "substr(sent_at, 1, 10)")
    op.execute(f"""
        INSERT INTO step_tally (day, kind, step_slug, sent, delivered, opened, clicked,
            unsubscribed, bounced, complained)
        SELECT {day}, kind, step_slug, COUNT(*), {_bit_sums()}
        FROM delivery WHERE state = 'sent' AND sent_at IS NOT NULL
        GROUP BY {day}, kind, step_slug
    """)
    visit_day = ("CAST(timezone('UTC', at) AS date)" if postgres else "substr(at, 1, 10)")
    op.execute(f"""
        INSERT INTO visit_tally (day, {VISIT_KEYS}, n)
        SELECT {visit_day}, {VISIT_KEYS}, COUNT(*) FROM visit GROUP BY {visit_day}, {VISIT_KEYS}
    """)
    for statement in (postgres_ddl() if postgres else sqlite_ddl()):
        op.execute(statement)


# Frozen here rather than imported: a migration must keep doing what it did.
# Same groups as funnel.tallies.BITS.
BITS = {"delivered": 1, "open": 2, "click": 4, "unsubscribe": 8, "group_unsubscribe": 8,
        "bounce": 16, "dropped": 16, "spamreport": 32}
GROUP_BITS = {"delivered": 1, "opened": 2, "clicked": 4, "unsubscribed": 8, "bounced": 16,
              "complained": 32}
TALLY_COLUMNS = "day, kind, step_slug, sent, " + ", ".join(GROUP_BITS)
VISIT_KEYS = "page, via, referrer_host, utm_source, utm_medium, utm_campaign"
PG_TRIGGERS = [
    ("subscriber", "status_tally_insert"), ("subscriber", "status_tally_update"),
    ("subscriber", "status_tally_delete"), ("delivery", "step_tally_insert"),
    ("delivery", "step_tally_update"), ("delivery", "step_tally_delete"),
    ("delivery_event", "event_bits_insert"), ("delivery_event", "event_bits_update"),
    ("delivery_event", "event_bits_delete"),
    ("visit", "visit_tally_insert"), ("visit", "visit_tally_update"), ("visit", "visit_tally_delete"),
]
SQLITE_TRIGGERS = [name for _table, name in PG_TRIGGERS]


def _contribution(row: str, sign: str, day: str) -> str:
    """A delivery row's part of step_tally: (day, kind, step, sent, one per group)."""
    groups = ", ".join(f"{sign} * (CASE WHEN ({row}.engaged & {bit}) <> 0 THEN 1 ELSE 0 END)"
                       for bit in GROUP_BITS.values())
    return f"{day}, {row}.kind, {row}.step_slug, {sign}, {groups}"


def postgres_ddl() -> list[str]:
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


def sqlite_ddl() -> list[str]:
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


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_delivery_event_kind_at", table_name="delivery_event")
        op.create_index("ix_delivery_event_kind_at", "delivery_event", ["kind", "at"])
        for table, name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON {table}")
        for function in ("funnel_status_tally", "funnel_step_tally", "funnel_event_bits",
                         "funnel_visit_tally"):
            op.execute(f"DROP FUNCTION {function}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriber_unsubscribed_at")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_problems")
        batch_op.drop_column("engaged")
    op.drop_table("visit_tally")
    op.drop_table("step_tally")
    op.drop_table("status_tally")
