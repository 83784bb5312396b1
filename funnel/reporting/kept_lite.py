"""The kept figures' triggers for SQLite (migration 0010's DDL, generated from
funnel.reporting.figures): row triggers; SQLite's single writer orders the changes."""

from __future__ import annotations

from funnel.reporting.figures import (
    CONSENT_KEYS,
    CREDIT_KEYS,
    DELIVERY_COLUMNS,
    LITE_CREDIT_CHANGE,
    ORIGIN,
    PROBLEM_KEYS,
)
from funnel.reporting.kept_pg import Pg


class Lite(Pg):
    # SQLite keeps UTC text ('2026-12-01 09:00:00.000000'): the day is its prefix.
    day = "substr({}, 1, 10)"

    def group(self, r: str) -> str:
        # What is left of the slug up to its last '-' (rtrim drops every other character).
        cut = f"rtrim({r}.step_slug, replace({r}.step_slug, '-', ''))"
        return (f"CASE WHEN {r}.kind = 'drip' OR instr({r}.step_slug, '-') = 0 THEN {r}.step_slug "
                f"ELSE substr({cut}, 1, length({cut}) - 1) END")

    def problem_row(self, r: str, sign: str) -> str:
        return (f"INSERT INTO problem_tally ({PROBLEM_KEYS}, n, retryable) "
                f"SELECT {self.group(r)}, {r}.kind, {r}.state, {r}.error, {sign}, "
                f"{sign} * (CASE WHEN {r}.state = 'failed' AND {r}.kind = 'drip' AND "
                f"(SELECT status FROM subscriber WHERE id = {r}.subscriber_id) = 'confirmed' "
                f"THEN 1 ELSE 0 END) WHERE {r}.state IN ('failed', 'held');")

    def ddl(self) -> list[str]:
        # SQLite has row triggers only; its single writer orders concurrent changes.
        # Alembic's batch mode copies a table on SQLite and loses its triggers: a later
        # migration that rebuilds subscriber, delivery or consent_record must make them again.
        cols = "id, subscriber_id, action, at"
        person = f"SELECT {cols} FROM consent_record WHERE subscriber_id IN ({{}})"
        insert_cells = f"INSERT INTO consent_tally ({CONSENT_KEYS}, n) "

        def recount(people: str, before: str) -> str:
            return insert_cells + self.consent_sums([
                self.cells(f"({person.format(people)})", "subscriber", "1"),
                self.cells(f"({before})", "subscriber", "-1")]) + ";"

        def origin_of(r: str) -> str:
            return (f"(SELECT {r}.id AS id, "
                    + ", ".join(f"{r}.{c} AS {c}" for c in ORIGIN) + ")")

        signed = (f"(SELECT {cols} FROM consent_record WHERE subscriber_id = NEW.id "
                  "AND action IN ('signup', 'confirm'))")
        failed_drip = ("FROM delivery d WHERE d.subscriber_id = {r}.id AND d.state = 'failed' "
                       "AND d.kind = 'drip' GROUP BY 1, 2, 3, 4")
        problems = f"INSERT INTO problem_tally ({PROBLEM_KEYS}, n, retryable) "
        states = "('failed', 'held')"
        return [
            f"CREATE TRIGGER problem_tally_insert AFTER INSERT ON delivery "
            f"WHEN NEW.state IN {states} BEGIN {self.problem_row('NEW', '1')} END",
            "CREATE TRIGGER problem_tally_update AFTER UPDATE OF state, error, kind, step_slug, "
            f"subscriber_id ON delivery WHEN OLD.state IN {states} OR NEW.state IN {states} "
            f"BEGIN {self.problem_row('OLD', '-1')} {self.problem_row('NEW', '1')} END",
            f"CREATE TRIGGER problem_tally_delete AFTER DELETE ON delivery "
            f"WHEN OLD.state IN {states} BEGIN {self.problem_row('OLD', '-1')} END",
            "CREATE TRIGGER consent_tally_insert AFTER INSERT ON consent_record BEGIN "
            + recount("NEW.subscriber_id",
                      person.format("NEW.subscriber_id") + " AND id <> NEW.id") + " END",
            "CREATE TRIGGER consent_tally_update AFTER UPDATE OF subscriber_id, action, at "
            "ON consent_record BEGIN "
            + recount("OLD.subscriber_id, NEW.subscriber_id",
                      person.format("OLD.subscriber_id, NEW.subscriber_id")
                      + " AND id <> NEW.id UNION ALL SELECT OLD.id, OLD.subscriber_id, "
                      "OLD.action, OLD.at") + " END",
            "CREATE TRIGGER consent_tally_delete AFTER DELETE ON consent_record BEGIN "
            + recount("OLD.subscriber_id",
                      person.format("OLD.subscriber_id") + " UNION ALL SELECT OLD.id, "
                      "OLD.subscriber_id, OLD.action, OLD.at") + " END",
            "CREATE TRIGGER problem_tally_status AFTER UPDATE OF status ON subscriber "
            "WHEN OLD.status IS NOT NEW.status AND 'confirmed' IN (OLD.status, NEW.status) BEGIN "
            f"{problems}SELECT {self.group('d')}, d.kind, d.state, d.error, 0, "
            "(CASE WHEN NEW.status = 'confirmed' THEN 1 ELSE -1 END) * COUNT(*) "
            f"{failed_drip.format(r='NEW')}; END",
            "CREATE TRIGGER consent_tally_origin AFTER UPDATE OF " + ", ".join(ORIGIN)
            + " ON subscriber WHEN "
            + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ORIGIN) + " BEGIN "
            + insert_cells + self.consent_sums([self.cells(signed, origin_of("OLD"), "-1"),
                                                self.cells(signed, origin_of("NEW"), "1")])
            + "; END",
            *self.lite_event_triggers(),
            *self.lite_credit_triggers(),
            "CREATE TRIGGER kept_subscriber_delete BEFORE DELETE ON subscriber BEGIN "
            f"{problems}SELECT {self.group('d')}, d.kind, d.state, d.error, 0, -COUNT(*) "
            f"{failed_drip.format(r='OLD')} HAVING OLD.status = 'confirmed'; "
            + insert_cells + self.consent_sums([self.cells(
                f"(SELECT {cols} FROM consent_record WHERE subscriber_id = OLD.id)",
                origin_of("OLD"), "-1")]) + "; "
            + f"INSERT INTO link_unsubscribe_tally ({CREDIT_KEYS}, n) " + self.sums(CREDIT_KEYS, [
                self.credited("(SELECT * FROM delivery WHERE subscriber_id = OLD.id)",
                              "(SELECT OLD.id AS id, OLD.unsubscribed_at AS unsubscribed_at)",
                              "-1")]) + "; END",
        ]


    def lite_event_triggers(self) -> list[str]:
        cols = "id, delivery_id, kind, step_slug, at, detail"
        current = f"SELECT {cols} FROM delivery_event WHERE delivery_id IN ({{}})"

        def row(r: str) -> str:
            return f"SELECT {', '.join(f'{r}.{c} AS {c}' for c in cols.split(', '))}"

        def body(emails: str, before: str, loose: list[tuple[str, str]]) -> str:
            return " ".join(s + ";" for s in self.event_recounts(
                f"({current.format(emails)})", f"({before})",
                [(f"({row(r)}) AS {r.lower()}_row", sign) for r, sign in loose]))

        return [
            "CREATE TRIGGER event_tally_insert AFTER INSERT ON delivery_event BEGIN "
            + body("NEW.delivery_id", current.format("NEW.delivery_id") + " AND id <> NEW.id",
                   [("NEW", "1")]) + " END",
            "CREATE TRIGGER event_tally_update AFTER UPDATE ON delivery_event BEGIN "
            + body("OLD.delivery_id, NEW.delivery_id",
                   current.format("OLD.delivery_id, NEW.delivery_id") + " AND id <> NEW.id "
                   f"UNION ALL {row('OLD')} WHERE OLD.delivery_id IS NOT NULL",
                   [("OLD", "-1"), ("NEW", "1")]) + " END",
            "CREATE TRIGGER event_tally_delete AFTER DELETE ON delivery_event BEGIN "
            + body("OLD.delivery_id", current.format("OLD.delivery_id")
                   + f" UNION ALL {row('OLD')} WHERE OLD.delivery_id IS NOT NULL",
                   [("OLD", "-1")]) + " END",
        ]


    def lite_credit_triggers(self) -> list[str]:
        insert = f"INSERT INTO link_unsubscribe_tally ({CREDIT_KEYS}, n) "
        cols = [c for c in DELIVERY_COLUMNS.split(", ")]
        person = "SELECT * FROM delivery WHERE subscriber_id IN ({})"

        def row(r: str) -> str:
            return "SELECT " + ", ".join(f"{r}.{c} AS {c}" for c in cols)

        def recount(people: str, before: str) -> str:
            return insert + self.sums(CREDIT_KEYS, [
                self.credited(f"({person.format(people)})", "subscriber", "1"),
                self.credited(f"({before})", "subscriber", "-1")]) + ";"

        def gone(r: str) -> str:
            return f"(SELECT unsubscribed_at FROM subscriber WHERE id = {r}.subscriber_id) IS NOT NULL"

        every = "SELECT " + ", ".join(cols) + " FROM delivery WHERE subscriber_id IN ({})"
        return [
            f"CREATE TRIGGER link_unsubscribe_insert AFTER INSERT ON delivery WHEN {gone('NEW')} "
            "BEGIN " + recount("NEW.subscriber_id", every.format("NEW.subscriber_id")
                               + " AND id <> NEW.id") + " END",
            "CREATE TRIGGER link_unsubscribe_update AFTER UPDATE OF state, sent_at, engaged, kind, "
            f"step_slug, subscriber_id ON delivery WHEN ({LITE_CREDIT_CHANGE.format(o='OLD', n='NEW')}) "
            f"AND ({gone('NEW')} OR {gone('OLD')}) BEGIN "
            + recount("OLD.subscriber_id, NEW.subscriber_id",
                      every.format("OLD.subscriber_id, NEW.subscriber_id")
                      + f" AND id <> NEW.id UNION ALL {row('OLD')}") + " END",
            f"CREATE TRIGGER link_unsubscribe_delete AFTER DELETE ON delivery WHEN {gone('OLD')} "
            "BEGIN " + recount("OLD.subscriber_id", every.format("OLD.subscriber_id")
                               + f" UNION ALL {row('OLD')}") + " END",
            "CREATE TRIGGER link_unsubscribe_subscriber AFTER UPDATE OF unsubscribed_at ON subscriber "
            "WHEN OLD.unsubscribed_at IS NOT NEW.unsubscribed_at BEGIN "
            + insert + self.sums(CREDIT_KEYS, [
                self.credited(f"({person.format('NEW.id')})",
                              "(SELECT OLD.id AS id, OLD.unsubscribed_at AS unsubscribed_at)", "-1"),
                self.credited(f"({person.format('NEW.id')})",
                              "(SELECT NEW.id AS id, NEW.unsubscribed_at AS unsubscribed_at)", "1")])
            + "; END",
        ]
