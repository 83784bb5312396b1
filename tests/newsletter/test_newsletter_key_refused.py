"""The provider refuses our key in the middle of a newsletter: the worker stops, and
the readers it had not reached are still waiting for the issue, which they get,
once each, when the key is fixed. On both ways of sending a batch (rows, and
FAST_NEWSLETTER=0)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from funnel.models import BroadcastRecipient, Delivery
from funnel.runtime import make_worker
from funnel.transports import AuthError
from tests.faults import ScriptedTransport
from tests.newsletter_support import add


@pytest.fixture(params=[True, False], ids=["rows", "plain"])
def app_config(app_config, request):
    return {**app_config, "FAST_NEWSLETTER": request.param, "WORKER_BATCH_SIZE": 10}


def test_a_refused_key_stops_the_issue_and_the_rest_get_it_once_fixed(app, runner, db, clock):
    for i in range(5):
        add(db, f"r{i}@example.com", now=clock.now)
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    provider = ScriptedTransport(idempotent=True, max_batch=2)
    provider.script = ["ok", AuthError("401 bad key")]  # the first two went out
    rt = app.extensions["funnel"]
    with pytest.raises(AuthError):
        make_worker(rt, transport=provider).run_pass(clock.now)
    db.rollback()
    waiting = db.scalar(select(func.count()).where(BroadcastRecipient.outcome.is_(None),
                                                   BroadcastRecipient.lease_until.is_(None)))
    assert waiting == 3  # not marked as gone: still due, and nobody holds them
    assert db.scalar(select(func.count()).select_from(Delivery)) == 2  # the intents withdrawn

    clock.advance(minutes=1)
    make_worker(rt, transport=provider).run_pass(clock.now)  # the key is fixed
    assert sorted(m.to for m in provider.sent) == [f"r{i}@example.com" for i in range(5)]
    db.rollback()
    outcomes = db.scalars(select(BroadcastRecipient.outcome)).all()
    assert outcomes == ["sent"] * 5
