"""The kept figures' triggers for PostgreSQL (migration 0010's DDL, generated from
funnel.reporting.figures): statement-level, with transition tables."""

from __future__ import annotations

from funnel.reporting.figures import (
    CONSENT_KEYS,
    CREDIT_CHANGE,
    CREDIT_KEYS,
    EVENT_KEYS,
    KIND_GROUP,
    LINK_KEYS,
    ORIGIN,
    PROBLEM_KEYS,
    UNREPORTED_LINK,
    UNSUBSCRIBED_BIT,
)


class Pg:
    day = "CAST(timezone('UTC', {}) AS date)"

    def group(self, r: str) -> str:
        # System mail carries a per-send suffix ("confirm-3f9a"): grouped by the email.
        return (f"CASE WHEN {r}.kind = 'drip' THEN {r}.step_slug "
                f"ELSE regexp_replace({r}.step_slug, '-[^-]*$', '') END")

    def problems(self, rows: str, sign: str) -> str:
        """A problem send's part of problem_tally. ``retryable`` is what
        funnel.core.lifecycle.can_receive_sequence allows (confirmed); a send whose
        subscriber is gone (a cascade) has had that part taken out already."""
        return (f"SELECT {self.group('r')} AS step_slug, r.kind AS kind, r.state AS state, "
                f"r.error AS error, {sign} AS n, "
                f"{sign} * (CASE WHEN r.state = 'failed' AND r.kind = 'drip' "
                f"AND s.status = 'confirmed' THEN 1 ELSE 0 END) AS retryable "
                f"FROM {rows} r LEFT JOIN subscriber s ON s.id = r.subscriber_id "
                f"WHERE r.state IN ('failed', 'held')")

    def problem_sums(self, parts: list[str]) -> str:
        return (f"SELECT {PROBLEM_KEYS}, SUM(n), SUM(retryable) FROM ("
                + " UNION ALL ".join(parts)
                + f") AS c GROUP BY {PROBLEM_KEYS} "
                "HAVING SUM(n) <> 0 OR SUM(retryable) <> 0")

    def cells(self, rows: str, people: str, sign: str) -> str:
        """Each consent record of ``rows`` (id, subscriber_id, action, at) as a cell,
        with where its person came from (``people``: rows shaped like subscriber).
        Records ordered by (at, id): several at one moment still have one first."""
        origin = ", ".join(f"CASE WHEN r.action IN ('signup', 'confirm') THEN p.{c} END AS {c}"
                           for c in ORIGIN)
        prev = "lag(r.at) OVER (PARTITION BY r.subscriber_id, r.action ORDER BY r.at, r.id)"
        signed_up = ("CASE WHEN r.action = 'confirm' AND MAX(CASE WHEN r.action = 'signup' "
                     "THEN 1 ELSE 0 END) OVER (PARTITION BY r.subscriber_id) = 1 THEN 1 ELSE 0 END AS signed_up")
        return (f"SELECT {self.day.format('r.at')} AS day, r.action AS action, "
                f"{self.day.format(prev)} AS prev_day, {origin}, {signed_up}, {sign} AS n "
                f"FROM {rows} r JOIN {people} p ON p.id = r.subscriber_id")

    def consent_sums(self, parts: list[str]) -> str:
        keys = CONSENT_KEYS
        return (f"SELECT {keys}, SUM(n) FROM (" + " UNION ALL ".join(parts)
                + f") AS c GROUP BY {keys} HAVING SUM(n) <> 0")

    def sums(self, keys: str, parts: list[str]) -> str:
        return (f"SELECT {keys}, SUM(n) FROM (" + " UNION ALL ".join(parts)
                + f") AS c GROUP BY {keys} HAVING SUM(n) <> 0")

    def event_cells(self, rows: str, sign: str) -> str:
        """Each provider event of ``rows`` (id, delivery_id, kind, at) in a group, with the
        day of the same email's previous event of that group: then "emails opened in
        first..last" counts the cells whose previous day is before ``first``."""
        group = "CASE r.kind " + " ".join(f"WHEN '{k}' THEN '{g}'" for k, g in KIND_GROUP.items()) + " END"
        prev = (f"lag(r.at) OVER (PARTITION BY r.delivery_id, {group} ORDER BY r.at, r.id)")
        kinds = ", ".join(f"'{k}'" for k in KIND_GROUP)
        return (f"SELECT {self.day.format('r.at')} AS day, {group} AS event_group, "
                f"{self.day.format(prev)} AS prev_day, {sign} AS n FROM {rows} r "
                f"WHERE r.delivery_id IS NOT NULL AND r.kind IN ({kinds})")

    def link_cells(self, rows: str, sign: str) -> str:
        """Each click of ``rows`` (id, delivery_id, kind, step_slug, at, detail) by email and
        link, with the day of the same delivery's previous click on that link. A click
        with no delivery counts as a click but never as a person: its previous day is
        its own, never before a period it falls in."""
        url = f"COALESCE(r.detail, '{UNREPORTED_LINK}')"
        prev = f"lag(r.at) OVER (PARTITION BY r.delivery_id, {url} ORDER BY r.at, r.id)"
        return (f"SELECT {self.day.format('r.at')} AS day, r.step_slug AS step_slug, {url} AS url, "
                f"CASE WHEN r.delivery_id IS NULL THEN {self.day.format('r.at')} "
                f"ELSE {self.day.format(prev)} END AS prev_day, {sign} AS n FROM {rows} r "
                f"WHERE r.kind = 'click' AND r.step_slug IS NOT NULL")

    def credited(self, deliveries: str, people: str, sign: str) -> str:
        """The emails credited with an unsubscribe through our own link, as in
        funnel.reporting.stats: for each person of ``people`` who unsubscribed, the last email
        sent up to that moment (all of them if several share it), unless it is system
        mail or the provider already reported the unsubscribe for it."""
        return (f"SELECT {self.day.format('d.sent_at')} AS day, d.step_slug AS step_slug, "
                f"{sign} AS n FROM (SELECT d.step_slug, d.kind, d.engaged, d.sent_at, "
                "rank() OVER (PARTITION BY d.subscriber_id ORDER BY d.sent_at DESC) AS nth "
                f"FROM {deliveries} d JOIN {people} p ON p.id = d.subscriber_id "
                "WHERE p.unsubscribed_at IS NOT NULL AND d.state = 'sent' "
                "AND d.sent_at <= p.unsubscribed_at) AS d "
                f"WHERE d.nth = 1 AND d.kind <> 'system' AND (d.engaged & {UNSUBSCRIBED_BIT}) = 0")

    def event_recounts(self, after: str, before: str, loose: list[tuple[str, str]]) -> list[str]:
        """Both event tallies: the affected emails' events ``after`` the change counted
        in, ``before`` it counted out; ``loose`` (rows, sign): clicks with no email."""
        cols = "{p}id, {p}delivery_id, {p}kind, {p}step_slug, {p}at, {p}detail"
        free = [self.link_cells(f"(SELECT {cols.format(p='')} FROM {t} "
                                "WHERE delivery_id IS NULL)", sign) for t, sign in loose]
        return [
            f"INSERT INTO event_tally ({EVENT_KEYS}, n) " + self.sums(EVENT_KEYS, [
                self.event_cells(after, "1"), self.event_cells(before, "-1")]),
            f"INSERT INTO link_tally ({LINK_KEYS}, n) " + self.sums(LINK_KEYS, [
                self.link_cells(after, "1"), self.link_cells(before, "-1"), *free]),
        ]

    def ddl(self) -> list[str]:
        # A row this transaction wrote is already locked by it (and taking the lock
        # again would rewrite every row of a bulk insert).
        not_ours = "xmin::text <> (txid_current() % 4294967296)::text"
        records = "(SELECT id, subscriber_id, action, at FROM consent_record WHERE subscriber_id IN ({}))"
        current = records.format("SELECT subscriber_id FROM {t}")

        def without(t: str) -> str:
            return (f"(SELECT c.id, c.subscriber_id, c.action, c.at FROM consent_record c "
                    f"WHERE c.subscriber_id IN (SELECT subscriber_id FROM {t}) "
                    f"AND NOT EXISTS (SELECT 1 FROM {t} x WHERE x.id = c.id))")

        def lock(people: str, mode: str) -> str:
            return (f"PERFORM 1 FROM subscriber WHERE id IN ({people}) AND {not_ours} "
                    f"ORDER BY id FOR {mode};")

        failing = "SELECT subscriber_id FROM {t} WHERE state = 'failed' AND kind = 'drip'"
        both = "(SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows) AS b"
        either = "SELECT subscriber_id FROM old_rows UNION SELECT subscriber_id FROM new_rows"
        before_update = (f"(SELECT c.id, c.subscriber_id, c.action, c.at FROM consent_record c "
                         f"WHERE c.subscriber_id IN ({either}) "
                         f"AND NOT EXISTS (SELECT 1 FROM new_rows x WHERE x.id = c.id) "
                         f"UNION ALL SELECT id, subscriber_id, action, at FROM old_rows)")
        before_delete = (f"({current.format(t='old_rows')[1:-1]} "
                         "UNION ALL SELECT id, subscriber_id, action, at FROM old_rows)")
        insert_problems = f"INSERT INTO problem_tally ({PROBLEM_KEYS}, n, retryable) "
        insert_cells = f"INSERT INTO consent_tally ({CONSENT_KEYS}, n) "
        moved = ("SELECT n.* FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE "
                 + " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in ORIGIN))
        moved_old = moved.replace("SELECT n.*", "SELECT o.*")
        status_moves = (
            f"SELECT {self.group('d')}, d.kind, d.state, d.error, 0, "
            "SUM(CASE WHEN n.status = 'confirmed' THEN 1 ELSE 0 END "
            "- CASE WHEN o.status = 'confirmed' THEN 1 ELSE 0 END) "
            "FROM old_rows o JOIN new_rows n ON n.id = o.id "
            "JOIN delivery d ON d.subscriber_id = n.id "
            "WHERE o.status IS DISTINCT FROM n.status AND d.state = 'failed' AND d.kind = 'drip' "
            f"GROUP BY 1, 2, 3, 4")
        signed = "(SELECT * FROM {} AS s WHERE action IN ('signup', 'confirm'))"
        insert_credits = f"INSERT INTO link_unsubscribe_tally ({CREDIT_KEYS}, n) "
        left = ("SELECT n.* FROM old_rows o JOIN new_rows n ON n.id = o.id "
                "WHERE o.unsubscribed_at IS DISTINCT FROM n.unsubscribed_at")
        left_old = left.replace("SELECT n.*", "SELECT o.*")
        left_deliveries = f"(SELECT * FROM delivery WHERE subscriber_id IN (SELECT id FROM ({left}) AS l))"
        origin_records = records.format(f"SELECT id FROM ({moved}) AS m")
        return [
            f"""
            CREATE FUNCTION funnel_problem_tally() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                -- Held against a concurrent change of the subscriber's status, which
                -- reads these sends: one of the two waits for the other's commit.
                IF TG_OP = 'INSERT' THEN
                    {lock(failing.format(t='new_rows'), 'SHARE')}
                    {insert_problems}{self.problem_sums([self.problems('new_rows', '1')])};
                ELSIF TG_OP = 'DELETE' THEN
                    {lock(failing.format(t='old_rows'), 'SHARE')}
                    {insert_problems}{self.problem_sums([self.problems('old_rows', '-1')])};
                ELSE
                    {lock(failing.format(t=both), 'SHARE')}
                    {insert_problems}{self.problem_sums([self.problems('old_rows', '-1'),
                                                         self.problems('new_rows', '1')])};
                END IF;
                RETURN NULL;
            END $$
            """,
            # The person's records are counted again, before and after the change:
            # a record added or removed changes the "previous record" of the next one.
            f"""
            CREATE FUNCTION funnel_consent_tally() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                -- Two transactions adding records for one person must not both find
                -- no earlier record: the second waits for the first's commit.
                IF TG_OP = 'INSERT' THEN
                    {lock('SELECT subscriber_id FROM new_rows', 'NO KEY UPDATE')}
                    {insert_cells}{self.consent_sums([
                        self.cells(current.format(t='new_rows'), 'subscriber', '1'),
                        self.cells(without('new_rows'), 'subscriber', '-1')])};
                ELSIF TG_OP = 'DELETE' THEN
                    {lock('SELECT subscriber_id FROM old_rows', 'NO KEY UPDATE')}
                    {insert_cells}{self.consent_sums([
                        self.cells(current.format(t='old_rows'), 'subscriber', '1'),
                        self.cells(before_delete, 'subscriber', '-1')])};
                ELSE
                    {lock(either, 'NO KEY UPDATE')}
                    {insert_cells}{self.consent_sums([
                        self.cells(records.format(either), 'subscriber', '1'),
                        self.cells(before_update, 'subscriber', '-1')])};
                END IF;
                RETURN NULL;
            END $$
            """,
            f"""
            CREATE FUNCTION funnel_kept_subscriber_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {insert_problems}SELECT {PROBLEM_KEYS}, 0, SUM(r) FROM ({status_moves})
                    AS c ({PROBLEM_KEYS}, n, r) GROUP BY {PROBLEM_KEYS} HAVING SUM(r) <> 0;
                {insert_cells}{self.consent_sums([
                    self.cells(signed.format(origin_records), f'({moved_old})', '-1'),
                    self.cells(signed.format(origin_records), f'({moved})', '1')])};
                {insert_credits}{self.sums(CREDIT_KEYS, [
                    self.credited(left_deliveries, f'({left_old})', '-1'),
                    self.credited(left_deliveries, f'({left})', '1')])};
                RETURN NULL;
            END $$
            """,
            f"""
            CREATE FUNCTION funnel_kept_subscriber_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.status = 'confirmed' THEN
                    {insert_problems}SELECT {self.group('d')}, d.kind, d.state, d.error, 0, -COUNT(*)
                    FROM delivery d WHERE d.subscriber_id = OLD.id AND d.state = 'failed'
                    AND d.kind = 'drip' GROUP BY 1, 2, 3, 4;
                END IF;
                {insert_cells}{self.consent_sums([self.cells(
                    "(SELECT id, subscriber_id, action, at FROM consent_record "
                    "WHERE subscriber_id = OLD.id)",
                    "(SELECT OLD.id AS id, " + ", ".join(f"OLD.{c} AS {c}" for c in ORIGIN) + ")",
                    '-1')])};
                {insert_credits}{self.sums(CREDIT_KEYS, [self.credited(
                    "(SELECT * FROM delivery WHERE subscriber_id = OLD.id)",
                    "(SELECT OLD.id AS id, OLD.unsubscribed_at AS unsubscribed_at)", '-1')])};
                RETURN OLD;
            END $$
            """,
            self.event_function(),
            self.credit_function(not_ours),
            *(f"CREATE TRIGGER link_unsubscribe_{op} AFTER {op.upper()} ON delivery "
              f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION funnel_link_unsubscribe()"
              for op, tables in (("insert", "NEW TABLE AS new_rows"),
                                 ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                 ("delete", "OLD TABLE AS old_rows"))),
            "CREATE TRIGGER event_tally_insert AFTER INSERT ON delivery_event "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_event_tally()",
            "CREATE TRIGGER event_tally_update AFTER UPDATE ON delivery_event "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_event_tally()",
            "CREATE TRIGGER event_tally_delete AFTER DELETE ON delivery_event "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_event_tally()",
            "CREATE TRIGGER problem_tally_insert AFTER INSERT ON delivery "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_problem_tally()",
            "CREATE TRIGGER problem_tally_update AFTER UPDATE ON delivery "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_problem_tally()",
            "CREATE TRIGGER problem_tally_delete AFTER DELETE ON delivery "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_problem_tally()",
            "CREATE TRIGGER consent_tally_insert AFTER INSERT ON consent_record "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_consent_tally()",
            "CREATE TRIGGER consent_tally_update AFTER UPDATE ON consent_record "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_consent_tally()",
            "CREATE TRIGGER consent_tally_delete AFTER DELETE ON consent_record "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_consent_tally()",
            "CREATE TRIGGER kept_subscriber_update AFTER UPDATE ON subscriber "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION funnel_kept_subscriber_update()",
            "CREATE TRIGGER kept_subscriber_delete BEFORE DELETE ON subscriber "
            "FOR EACH ROW EXECUTE FUNCTION funnel_kept_subscriber_delete()",
        ]


    def event_function(self) -> str:
        cols = "e.id, e.delivery_id, e.kind, e.step_slug, e.at, e.detail"
        emails = "SELECT delivery_id FROM {t} WHERE delivery_id IS NOT NULL"
        current = f"(SELECT {cols} FROM delivery_event e WHERE e.delivery_id IN ({emails}))"
        either = ("SELECT delivery_id FROM old_rows WHERE delivery_id IS NOT NULL "
                  "UNION SELECT delivery_id FROM new_rows WHERE delivery_id IS NOT NULL")
        # Clicks with no email are counted in and out on their own (``loose``).
        old = ("SELECT id, delivery_id, kind, step_slug, at, detail FROM old_rows "
               "WHERE delivery_id IS NOT NULL")

        def body(after: str, before: str, loose: list[tuple[str, str]]) -> str:
            return ";\n".join(self.event_recounts(after, before, loose)) + ";"

        without_new = current[:-1] + " AND NOT EXISTS (SELECT 1 FROM new_rows x WHERE x.id = e.id))"
        # Events of one email are ordered by event_bits_*, which locks the email's
        # delivery row first (trigger names fire in order): a concurrent batch for the
        # same email waits for this one's commit and then reads its events.
        return f"""
            CREATE FUNCTION funnel_event_tally() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    {body(current.format(t='new_rows'), without_new.format(t='new_rows'),
                          [('new_rows', '1')])}
                ELSIF TG_OP = 'DELETE' THEN
                    {body(current.format(t='old_rows'),
                          f"({current.format(t='old_rows')[1:-1]} UNION ALL {old})",
                          [('old_rows', '-1')])}
                ELSE
                    {body(current.replace(emails, either),
                          f"({without_new.replace(emails, either)[1:-1]} UNION ALL {old})",
                          [('old_rows', '-1'), ('new_rows', '1')])}
                END IF;
                RETURN NULL;
            END $$
            """


    def credit_function(self, not_ours: str) -> str:
        # Only people who unsubscribed have credited emails: the worker's sends to
        # everyone else cost one lookup by key per row and nothing more.
        gone = ("SELECT s.id FROM subscriber s WHERE s.unsubscribed_at IS NOT NULL "
                "AND s.id IN (SELECT subscriber_id FROM {t})")
        either = "(SELECT subscriber_id FROM old_rows UNION SELECT subscriber_id FROM new_rows) AS e"
        insert = f"INSERT INTO link_unsubscribe_tally ({CREDIT_KEYS}, n) "

        def recount(t: str, before: str) -> str:
            return insert + self.sums(CREDIT_KEYS, [
                self.credited(f"(SELECT * FROM delivery WHERE subscriber_id IN ({gone.format(t=t)}))",
                              "subscriber", "1"),
                self.credited(before, "subscriber", "-1")]) + ";"

        def without(t: str, plus_old: bool) -> str:
            old = " UNION ALL SELECT * FROM old_rows" if plus_old else ""
            return (f"(SELECT d.* FROM delivery d WHERE d.subscriber_id IN ({gone.format(t=t)}) "
                    f"AND NOT EXISTS (SELECT 1 FROM new_rows x WHERE x.id = d.id){old})")

        changed = CREDIT_CHANGE
        # Held against a concurrent unsubscribe, whose trigger reads these emails:
        # one of the two waits for the other's commit.
        lock = ("PERFORM 1 FROM subscriber WHERE id IN (SELECT subscriber_id FROM {t} "
                f"WHERE state = 'sent') AND {not_ours} ORDER BY id FOR SHARE;")
        return f"""
            CREATE FUNCTION funnel_link_unsubscribe() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    {lock.format(t='new_rows')}
                    {recount('new_rows', without('new_rows', False))}
                ELSIF TG_OP = 'DELETE' THEN
                    {lock.format(t='old_rows')}
                    {recount('old_rows', f"(SELECT d.* FROM delivery d WHERE d.subscriber_id IN ({gone.format(t='old_rows')}) UNION ALL SELECT * FROM old_rows)")}
                ELSE
                    -- Opens, clicks and deliveries set other bits: nothing to recount.
                    IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
                                   WHERE {changed.format(o='o', n='n')}) THEN
                        RETURN NULL;
                    END IF;
                    {lock.format(t='(SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows) AS b')}
                    {recount(either, without(either, True))}
                END IF;
                RETURN NULL;
            END $$
            """
