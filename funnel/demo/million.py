"""A list of any size with a year of history, built inside PostgreSQL.

``flask --app funnel demo seed --subscribers 1000000``: one ``INSERT ... SELECT``
over ``generate_series`` per table, so nothing crosses the wire row by row and a
million subscribers with about ten million deliveries and events take minutes.
The shape, per 100 subscribers: 10 pending, 10 unsubscribed, 2 bounced, the rest
confirmed; everyone past the confirmation got every step due since (one every
three days), 3 in 10 deliveries have a "delivered" event, 1 in 4 an open, 1 in 13
a click; recent sign-ups still have a step due in the next week. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from funnel.demo.seed import AlreadySeeded
from funnel.models import Delivery, DeliveryEvent, Subscriber, Visit

NAMES = ["Sam", "Alex", "Jo", "Priya", "Tom", "Zoë", "O'Brien"]


@dataclass
class MillionReport:
    subscribers: int
    deliveries: int
    events: int
    visits: int
    consents: int


STATEMENTS = [
    # Subscribers: created over the last year, one every ~30 s.
    """
    INSERT INTO subscriber (public_id, email, first_name, status, timezone, created_at,
        confirm_sent_at, confirmed_at, unsubscribed_at, next_due_at, utm_source, utm_medium)
    SELECT md5('s' || g), 'runner' || g || '@example.com',
        CASE WHEN g % 8 = 7 THEN NULL ELSE (:names)[1 + g % 7] END,
        CASE WHEN g % 10 = 0 THEN 'pending' WHEN g % 10 = 1 THEN 'unsubscribed'
             WHEN g % 50 = 2 THEN 'bounced' ELSE 'confirmed' END,
        'Europe/London', c, c,
        CASE WHEN g % 10 = 0 THEN NULL ELSE c + interval '10 minutes' END,
        CASE WHEN g % 10 = 1 THEN c + interval '20 days' END,
        CASE WHEN g % 10 > 1 AND g % 50 <> 2 AND c > :now - interval '24 days'
             THEN :now + (1 + g % 7) * interval '1 day' END,
        (ARRAY['instagram', 'newsletter', 'google', NULL])[1 + g % 4],
        (ARRAY['social', 'email', 'cpc', NULL])[1 + g % 4]
    FROM generate_series(1, :n) g,
        LATERAL (SELECT :now - (:n - g) * (interval '365 days' / :n) AS c) t
    """,
    """
    INSERT INTO consent_record (subscriber_id, action, at, text_version, page)
    SELECT id, 'signup', created_at, 'v1', '/free-plan' FROM subscriber
    UNION ALL
    SELECT id, 'withdraw', unsubscribed_at, NULL, NULL FROM subscriber
    WHERE unsubscribed_at IS NOT NULL
    """,
    # Every step due since the confirmation, one every three days.
    # Ids are given here so that ``engaged`` (the event groups, which the dashboard's
    # tallies count) is known at once from the same rule that makes the events below:
    # no second pass over millions of deliveries.
    """
    INSERT INTO delivery (id, public_id, subscriber_id, kind, step_slug, state, attempts,
        message_id, created_at, sent_at, engaged)
    SELECT n, md5('d' || sid || '-' || k), sid, 'drip', (:slugs)[k], state, 1,
        '<' || sid || '-' || k || '@example.com>', at, at,
        CASE WHEN state = 'sent' THEN (CASE WHEN n % 10 < 3 THEN 1 ELSE 0 END)
            | (CASE WHEN n % 4 < 1 THEN 2 ELSE 0 END) | (CASE WHEN n % 13 < 1 THEN 4 ELSE 0 END)
            ELSE 0 END
    FROM (
        SELECT s.id AS sid, k, at, row_number() OVER () AS n,
            CASE WHEN (s.id + k) % 200 = 0 THEN 'failed' ELSE 'sent' END AS state
        FROM subscriber s, generate_series(1, :steps) k,
            LATERAL (SELECT s.confirmed_at + (k - 1) * interval '3 days' AS at) t
        WHERE s.confirmed_at IS NOT NULL AND at <= LEAST(:now, COALESCE(s.unsubscribed_at, :now))
    ) AS d
    """,
    "SELECT setval(pg_get_serial_sequence('delivery', 'id'), "
    "(SELECT COALESCE(MAX(id), 0) + 1 FROM delivery), false)",
    # The events' groups are already in ``engaged``: the trigger that would set them
    # again, row by row, is left out for this one statement (inside this transaction).
    "ALTER TABLE delivery_event DISABLE TRIGGER event_bits_insert",
    """
    INSERT INTO delivery_event (delivery_id, subscriber_id, kind, step_slug, at)
    SELECT d.id, d.subscriber_id, e.kind, d.step_slug, d.sent_at + e.after
    FROM delivery d JOIN (VALUES ('delivered', interval '1 minute', 10, 3),
                                 ('open', interval '2 hours', 4, 1),
                                 ('click', interval '3 hours', 13, 1)) AS e(kind, after, m, r)
        ON d.id % e.m < e.r
    WHERE d.state = 'sent'
    """,
    "ALTER TABLE delivery_event ENABLE TRIGGER event_bits_insert",
    # Visits: about three per subscriber over the year, article and landing page.
    """
    INSERT INTO visit (page, at, referrer_host, utm_source)
    SELECT CASE WHEN g % 3 = 0 THEN 'landing' ELSE 'article' END,
        :now - (3 * :n - g) * (interval '365 days' / (3 * :n)),
        (ARRAY['www.google.com', 'l.instagram.com', NULL])[1 + g % 3],
        (ARRAY['instagram', 'newsletter', NULL, NULL])[1 + g % 4]
    FROM generate_series(1, 3 * :n) g
    """,
]


def seed_million(session: Session, *, n: int, now: datetime, slugs: list[str],
                 progress=lambda _msg: None) -> MillionReport:
    """Build ``n`` subscribers and their history; PostgreSQL only."""
    if session.get_bind().dialect.name != "postgresql":
        raise ValueError("--subscribers builds its list inside PostgreSQL: "
                         "set DATABASE_URL to a PostgreSQL database")
    if session.scalar(select(func.count()).select_from(Subscriber)) or session.scalar(
            select(func.count()).select_from(Visit)):
        raise AlreadySeeded("the database already has subscribers or visits; demo data is "
                            "only added to an empty one")
    params = {"n": n, "now": now, "names": NAMES, "slugs": slugs, "steps": len(slugs)}
    for statement in STATEMENTS:
        # psycopg sends parameters untyped: say what each one is.
        statement = (statement.replace(":names", "CAST(:names AS text[])")
                     .replace(":slugs", "CAST(:slugs AS text[])")
                     .replace(":now", "CAST(:now AS timestamptz)")
                     .replace(":n)", "CAST(:n AS integer))").replace(":n ", "CAST(:n AS integer) ")
                     .replace(":steps", "CAST(:steps AS integer)"))
        first_line = " ".join(statement.split())[:60]
        progress(f"{first_line}…")
        session.execute(text(statement), params)
    session.commit()
    progress("VACUUM ANALYZE…")
    # Planner statistics, and the visibility map that lets counts use index-only
    # scans; VACUUM cannot run inside a transaction.
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    def count(model: type) -> int:
        return session.scalar(select(func.count()).select_from(model)) or 0

    return MillionReport(
        subscribers=count(Subscriber), deliveries=count(Delivery),
        events=count(DeliveryEvent), visits=count(Visit),
        consents=session.scalar(text("SELECT count(*) FROM consent_record")) or 0)
