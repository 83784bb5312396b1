"""The newsletter's row path (plain rows, set-based writes: the default) and its
plain path (``FAST_NEWSLETTER=0``: ORM objects) do the same thing, for any list of
readers, any history and anything that happens meanwhile: the same emails handed
to the provider in the same order, and the same rows afterwards (deliveries,
recipients, the issue, the webhook events, the kept tallies).

Each example is played twice on a fresh database, once per path: readers with
names, zones and tags; deliveries of the issue from an earlier run (sent, failed,
retried, held, interrupted mid-send); changes before the worker comes (an
unsubscribe, a pause, newsletters turned off, not due yet in their zone) and
between the intents and the send (an unsubscribe, a pause, another worker taking
the reader over, the issue cancelled); a subject test's variants; and what the
provider answers for each reader (sent, refused, unknown, try later, a crash, our
key refused)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from funnel import create_app
from funnel.mail import sending
from funnel.mail.compose import Composer
from funnel.mail.shared_body import apply_substitutions
from funnel.models import (
    Base,
    Broadcast,
    BroadcastRecipient,
    Delivery,
    Subscriber,
    SubscriberTag,
    WebhookEndpoint,
)
from funnel.newsletter import plain_batch, row_batch
from funnel.newsletter.work import BroadcastWork
from funnel.reporting import tallies
from funnel.transports import AuthError, SendResult, TransientSendError
from tests.conftest import _truncate_postgres
from tests.faults import Crash
from tests.newsletter_support import write_broadcast

SLUG = "paths-issue"
OWNER = "host:1:paths"
NAMES = ["Ann", None, "O'Brien", "Zoë", "Dev & Co", "a*b*_c_", "<b>x</b>", "# Head"]
ZONES = ["Europe/London", "America/New_York", "Asia/Tokyo"]
BODIES = {
    "plain": "Hi {{ first_name }},\n\nHills this week. [Your plan]({{ my_plan_url }})\n",
    "tags": "Hi {{ first_name }},\n\n{% if \"hills\" in tags %}Hill repeats.{% else %}"
            "Flat and easy.{% endif %}\n\n[Read it online]({{ view_url }})\n",
}
PRIOR = [None, None, None, "sent", "failed", "unknown", "retry", "held", "sending"]
BEFORE = [None, None, None, "unsubscribed", "no newsletter", "paused", "pause over", "later"]
BETWEEN = [None, None, None, None, "unsubscribed", "paused", "taken over"]
ANSWERS = ["ok", "ok", "ok", "ok", "refused", "unknown", "later", "crash", "key refused", "dies"]


@st.composite
def readers(draw):
    return {
        "name": draw(st.sampled_from(NAMES)), "zone": draw(st.sampled_from(ZONES)),
        "tags": draw(st.sets(st.sampled_from(["hills", "trail"]))),
        "prior": draw(st.sampled_from(PRIOR)), "before": draw(st.sampled_from(BEFORE)),
        "between": draw(st.sampled_from(BETWEEN)), "answer": draw(st.sampled_from(ANSWERS)),
        "variant": draw(st.sampled_from([None, 0, 1])),
    }


scenarios = st.fixed_dictionaries({
    "readers": st.lists(readers(), min_size=1, max_size=9),
    "body": st.sampled_from(sorted(BODIES)),
    "subject_test": st.booleans(),
    "cancel_between": st.booleans(),
    "idempotent": st.booleans(),
    "batch_size": st.integers(1, 5),
    "max_batch": st.integers(1, 4),
})


class Provider:
    """Answers each reader as the scenario says, chunk by chunk, like a provider."""

    def __init__(self, answers: dict[str, str], idempotent: bool, max_batch: int) -> None:
        self.answers, self.idempotent, self.max_batch = answers, idempotent, max_batch
        self.sent: list = []

    def send(self, messages):
        self.sent.append(list(messages))
        done: list[SendResult] = []
        for m in messages:
            answer = self.answers[m.to]
            if answer == "key refused":
                raise AuthError("401 bad key", results=done)
            if answer == "later":
                raise TransientSendError("429", retry_after=36_000, results=done)
            if answer == "crash":
                raise RuntimeError("connection reset")
            if answer == "dies":  # the worker's process, in the provider's hands
                raise Crash()
            if answer == "refused":
                done.append(SendResult(m.key, False, error="550 no such user"))
            elif answer == "unknown":
                done.append(SendResult(m.key, False, error="timed out", unknown=True))
            else:
                done.append(SendResult(m.key, True, provider_id=f"sg-{m.to}"))
        return done


def _fresh_app(app_config, template, tmp_path, name: str):
    url = app_config["DATABASE_URL"]
    if url.startswith("sqlite"):
        path = tmp_path / f"{name}.db"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
    else:
        _truncate_postgres(url)
    return create_app({**app_config, "DATABASE_URL": url})


def _arrange(app, sc, clock) -> None:
    now = clock.now
    rt = app.extensions["funnel"]
    write_broadcast(Path(rt.settings.emails_dir), SLUG, body=BODIES[sc["body"]])
    with rt.sessions() as s:
        s.add(WebhookEndpoint(url="https://hooks.example.com/in", secret="x", created_at=now,
                              events="email.sent subscriber.unsubscribed broadcast.finished"))
        for i, r in enumerate(sc["readers"]):
            sub = Subscriber(public_id=f"pub{i:03d}", email=f"r{i:03d}@example.com",
                             first_name=r["name"], status="confirmed", timezone=r["zone"],
                             created_at=now - timedelta(days=60),
                             confirmed_at=now - timedelta(days=59))
            s.add(sub)
            s.flush()
            for tag in sorted(r["tags"]):
                s.add(SubscriberTag(subscriber_id=sub.id, tag=tag, added_at=now, source="admin"))
        s.commit()
    result = app.test_cli_runner().invoke(args=["broadcast", "send", SLUG])
    assert result.exit_code == 0, result.output
    with rt.sessions() as s:
        row = s.scalar(select(Broadcast).where(Broadcast.slug == SLUG))
        if sc["subject_test"]:
            row.test_subjects = json.dumps(["Hills made easy", "Six hills, one coffee"])
        recs = {r.subscriber_id: r for r in s.scalars(select(BroadcastRecipient))}
        for i, r in enumerate(sc["readers"]):
            sub = s.scalar(select(Subscriber).where(Subscriber.public_id == f"pub{i:03d}"))
            rec = recs[sub.id]
            if sc["subject_test"]:
                rec.variant = r["variant"]
            if r["prior"]:
                done = r["prior"] in ("sent", "failed", "unknown")
                s.add(Delivery(public_id=f"old{i:03d}", kind="broadcast", step_slug=SLUG,
                               subscriber_id=sub.id, state=r["prior"], attempts=2,
                               created_at=now - timedelta(hours=2),
                               sent_at=now - timedelta(hours=1) if done else None,
                               retry_at=None if done else now - timedelta(minutes=1),
                               error=None if r["prior"] == "sent" else "earlier"))
            before = r["before"]
            if before == "unsubscribed":
                sub.status, sub.unsubscribed_at = "unsubscribed", now - timedelta(minutes=5)
            elif before == "no newsletter":
                sub.wants_newsletter = False
            elif before in ("paused", "pause over"):
                sub.paused_until = now + timedelta(days=3 if before == "paused" else -1)
            elif before == "later":
                rec.due_at = now + timedelta(hours=5)  # their 9 am has not come yet
        s.commit()


def _between(app, sc, clock):
    """Changes committed after the batch's intents, before it is sent."""
    rt = app.extensions["funnel"]
    applied: list[bool] = []

    def change() -> None:
        if applied:
            return
        applied.append(True)
        with rt.sessions() as s:
            for i, r in enumerate(sc["readers"]):
                sub = s.scalar(select(Subscriber).where(Subscriber.public_id == f"pub{i:03d}"))
                if r["between"] == "unsubscribed":
                    sub.status, sub.unsubscribed_at = "unsubscribed", clock.now
                elif r["between"] == "paused":
                    sub.paused_until = clock.now + timedelta(days=1)
                elif r["between"] == "taken over":
                    s.execute(BroadcastRecipient.__table__.update().where(
                        BroadcastRecipient.subscriber_id == sub.id,
                        BroadcastRecipient.lease_owner == OWNER).values(lease_owner="other:2:x"))
            s.commit()
        if sc["cancel_between"]:
            result = app.test_cli_runner().invoke(args=["broadcast", "cancel", SLUG])
            assert result.exit_code == 0, result.output

    return change


def _play(app, sc, clock, monkeypatch, fast: bool):
    """Two passes: the scenario's, then one after every lease and backoff ran out
    with the provider answering (a restarted worker picks up what was left)."""
    rt = app.extensions["funnel"]
    counter = itertools.count()
    make_id = lambda: f"del{next(counter):04d}"  # noqa: E731  (the same ids on both paths)
    monkeypatch.setattr(plain_batch, "new_public_id", make_id)
    monkeypatch.setattr(row_batch, "new_public_id", make_id)
    # The backoff's jitter, the same on both paths.
    monkeypatch.setattr(sending, "backoff", lambda attempts, retry_after, _rng: timedelta(
        seconds=retry_after or 60 * attempts))
    provider = Provider({f"r{i:03d}@example.com": r["answer"]
                         for i, r in enumerate(sc["readers"])},
                        sc["idempotent"], sc["max_batch"])
    change = _between(app, sc, clock)
    start, reports = clock.now, []
    try:
        for owner, later in ((OWNER, None), (OWNER + "-restarted", timedelta(hours=11))):
            if later:
                clock.now = start + later
                provider.answers = dict.fromkeys(provider.answers, "ok")
            work = BroadcastWork(rt.sessions, Composer(rt.settings, rt.clock), provider,
                                 owner=owner, emails_dir=rt.settings.emails_dir,
                                 batch_size=sc["batch_size"], fast=fast, clock=rt.clock)
            send = work.batch._send

            def send_after_change(*args, send=send):
                change()
                return send(*args)

            work.batch._send = send_after_change  # type: ignore[method-assign]
            try:
                reports.append(dataclasses.asdict(work.run(clock.now)))
            except AuthError:
                reports.append({"stopped": "our key was refused"})
            except Crash:
                reports.append({"stopped": "the worker died"})
    finally:
        clock.now = start
    with rt.sessions() as s:
        tallies.compact(s)
        s.commit()
        # A tallied figure is what the raw rows say, after either path.
        assert tallies.tallied(s) == tallies.recount(s)
    return reports, [[_email(m) for m in chunk] for chunk in provider.sent], _rows(rt)


def _email(msg):
    """The email as the reader gets it. How a provider is offered it (a shared body
    and substitutions, whose marker tags differ from one composer to the next) must
    give back exactly that email."""
    if msg.shared is not None:
        assert apply_substitutions(msg.shared.html, msg.substitutions) == msg.html
        assert apply_substitutions(msg.shared.text, msg.substitutions) == msg.text
    return dataclasses.replace(msg, shared=None, substitutions=None), msg.shared is not None


def _rows(rt) -> dict[str, list]:
    out: dict[str, list] = {}
    with rt.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            names = [c.name for c in table.columns
                     if not (table.name == "webhook_message" and c.name in ("id", "msg_id"))
                     and not (table.name.endswith("tally") and c.name == "id")]
            # A lease's end follows the real time its claim took: whether one is held.
            cols = [f"{c} IS NOT NULL" if (table.name, c) == ("broadcast_recipient", "lease_until")
                    else c for c in names]
            rows = [tuple(row) for row in conn.execute(
                text(f"SELECT {', '.join(cols)} FROM {table.name}"))]
            # Events and folded tallies are sets: their order means nothing.
            out[table.name] = sorted(rows, key=repr)
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)  # two fresh databases an example
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sc=scenarios)
def test_the_row_path_writes_and_sends_what_the_plain_path_does(
        app_config, _sqlite_template, tmp_path_factory, clock, monkeypatch, sc):
    played = []
    for fast in (False, True):
        app = _fresh_app(app_config, _sqlite_template, tmp_path_factory.mktemp("paths"),
                         "fast" if fast else "plain")
        try:
            _arrange(app, sc, clock)
            played.append(_play(app, sc, clock, monkeypatch, fast))
        finally:
            app.extensions["funnel"].engine.dispose()
    (plain_report, plain_sent, plain_rows), (report, sent, rows) = played
    assert sent == plain_sent
    assert report == plain_report
    for table in plain_rows:
        assert rows[table] == plain_rows[table], table
