"""The SendGrid transport. Every request is checked against SendGrid's own API
contract (Prism, fed SendGrid's OpenAPI file); what Prism cannot do (429, 5xx,
hanging, X-Message-Id, error bodies) is played by a scripted fake."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from funnel import create_app
from funnel.config import ConfigError, Settings, defaults, from_environment
from funnel.core.sequence import load_sequence
from funnel.mail.compose import Composer
from funnel.models import Subscriber
from funnel.transports import AuthError, Message, TransientSendError, make_transport
from funnel.transports.sendgrid import SendGridTransport
from tests.conftest import START, TEST_SECRET
from tests.sendgrid_support import (
    API_KEY,
    FakeSendGrid,
    RecordingProxy,
    Reply,
    free_port,
    link_path,
    prism_url,
)

NAMES = ["Sam", None, "O'Brien & <Co>", "Zoë", "Smith, Jo; Jr", "[x](http://evil.example)",
         "*bold*", "there"]


@pytest.fixture(scope="module")
def composer() -> Composer:
    config = {**defaults("/nonexistent"), "SECRET_KEY": TEST_SECRET,
              "FUNNEL_BASE_URL": "https://plan.example"}
    return Composer(Settings.from_config(config), lambda: START)


@pytest.fixture(scope="module")
def steps(composer):
    return list(load_sequence(composer.settings.emails_dir))


def people(n: int, start: int = 0) -> list[Subscriber]:
    return [Subscriber(public_id=f"sub{i}", email=f"runner{i}@example.com",
                       first_name=NAMES[i % len(NAMES)]) for i in range(start, start + n)]


def compose(composer: Composer, step, subs: list[Subscriber]) -> list[Message]:
    return [composer.message(step.source, sub, key=f"{step.slug}-{sub.public_id}", now=START,
                             delivery_id=f"d-{step.slug}-{sub.public_id}", category=step.slug)
            for sub in subs]


@pytest.fixture
def proxy():
    with RecordingProxy(prism_url()) as p:
        yield p


@pytest.fixture
def fake():
    with FakeSendGrid() as f:
        yield f


# -- against SendGrid's contract ------------------------------------------------------

def test_one_step_for_many_recipients_is_one_valid_request(proxy, composer, steps):
    subs = people(len(NAMES))
    msgs = compose(composer, steps[0], subs)
    results = SendGridTransport(API_KEY, host=proxy.url).send(msgs)

    assert proxy.problems() == []
    [ex] = proxy.mail()
    assert ex.headers["Authorization"] == f"Bearer {API_KEY}"
    assert ex.body["categories"] == [steps[0].slug]
    assert ex.body["from"] == {"email": "plan@runstronger.example", "name": "Run Stronger"}
    assert len(ex.body["personalizations"]) == len(subs)
    assert [r.ok for r in results] == [True] * len(subs)
    assert {r.provider_id for r in results} == {"prism-1"}
    for sub, msg in zip(subs, msgs):
        p = ex.personalization_for(sub.email)
        assert p["custom_args"] == {"delivery_id": msg.delivery_id}
        assert p["headers"] == {**msg.headers, "Message-ID": msg.message_id}
        assert set(p["headers"]) == {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id",
                                     "Message-ID"}
        # What SendGrid assembles is exactly what we rendered for this person...
        got = ex.received_by(sub.email)
        assert (got["subject"], got["text"], got["html"]) == (msg.subject, msg.text, msg.html)
        # ...with their own links, no one else's.
        token = link_path(got["text"], "unsubscribe").rsplit("/", 1)[1]
        assert composer.tokens.load("unsubscribe", token) == sub.public_id
    # The body went once, not once per person; no personal data in custom_args.
    assert not any(sub.email in c["value"] for c in ex.body["content"] for sub in subs)
    assert not any("@" in v for p in ex.body["personalizations"] for v in p["custom_args"].values())


def test_names_with_commas_are_quoted(proxy, composer, steps):
    [msg] = compose(composer, steps[0], [Subscriber(public_id="q", email="q@example.com",
                                                    first_name='Smith, "Jo"; Jr')])
    SendGridTransport(API_KEY, host=proxy.url).send([msg])
    assert proxy.problems() == []
    assert proxy.mail()[0].body["personalizations"][0]["to"] == [
        {"email": "q@example.com", "name": '"Smith, Jo; Jr"'}]


def test_mixed_steps_go_as_one_request_per_step(proxy, composer, steps):
    first = compose(composer, steps[0], people(3))
    second = compose(composer, steps[1], people(2, start=3))
    confirm = composer.message(composer.system_source("confirm"), people(1, start=5)[0],
                               key="20261201T090000-confirm-abc", now=START, list_mail=False)
    mixed = [first[0], second[0], confirm, first[1], second[1], first[2]]
    results = SendGridTransport(API_KEY, host=proxy.url).send(mixed)

    assert proxy.problems() == []
    assert sorted(r.key for r in results if r.ok) == sorted(m.key for m in mixed)
    by_category = {tuple(e.body.get("categories", [])): e for e in proxy.mail()}
    assert set(by_category) == {(steps[0].slug,), (steps[1].slug,), ()}
    assert by_category[(steps[0].slug,)].recipients() == [m.to for m in first]
    assert by_category[(steps[1].slug,)].recipients() == [m.to for m in second]
    system = by_category[()]
    assert system.body["personalizations"][0]["custom_args"] == {
        "message_key": "20261201T090000-confirm-abc"}
    assert "List-Unsubscribe" not in system.body["personalizations"][0]["headers"]
    for msg in mixed:
        ex = next(e for e in proxy.mail() if e.personalization_for(msg.to))
        assert ex.received_by(msg.to)["text"] == msg.text


def test_more_than_1000_recipients_take_two_requests(proxy, composer, steps):
    msgs = compose(composer, steps[0], people(1001))
    results = SendGridTransport(API_KEY, host=proxy.url).send(msgs)
    assert proxy.problems() == []
    assert [len(e.body["personalizations"]) for e in proxy.mail()] == [1000, 1]
    assert all(r.ok for r in results) and len(results) == 1001


def test_sandbox_mode(proxy, composer, steps):
    msgs = compose(composer, steps[0], people(2))
    SendGridTransport(API_KEY, host=proxy.url, sandbox=True).send(msgs)
    assert proxy.problems() == []
    assert proxy.mail()[0].body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert from_environment({"SENDGRID_SANDBOX": "1"})["SENDGRID_SANDBOX"] is True
    assert from_environment({"SENDGRID_SANDBOX": "0"})["SENDGRID_SANDBOX"] is False


def test_sendgrid_is_chosen_by_config_and_needs_a_key(tmp_path):
    config = {**defaults(str(tmp_path)), "MAIL_TRANSPORT": "sendgrid",
              "SENDGRID_API_KEY": API_KEY, "SENDGRID_TIMEOUT": 3.5, "SENDGRID_SANDBOX": True}
    transport = make_transport(config)
    assert isinstance(transport, SendGridTransport)
    assert transport.api.client.timeout == 3.5 and transport.sandbox is True
    assert transport.idempotent is False and transport.max_batch == 1000
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        create_app({"SECRET_KEY": TEST_SECRET, "MAIL_TRANSPORT": "sendgrid",
                    "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})


# -- what only a fake can play ----------------------------------------------------------

def transport_for(fake: FakeSendGrid, timeout: float = 5.0) -> SendGridTransport:
    return SendGridTransport(API_KEY, host=fake.url, timeout=timeout)


@pytest.mark.parametrize("kind, expected", [
    ("seconds", 30), ("date", 120), ("rate-limit-reset", 60), ("none", None)])
def test_429_is_transient_and_says_when_to_retry(fake, composer, steps, kind, expected):
    header = {
        "seconds": {"Retry-After": "30"},
        "date": {"Retry-After": format_datetime(
            datetime.now(UTC) + timedelta(seconds=120), usegmt=True)},
        "rate-limit-reset": {"X-RateLimit-Reset": str(int(time.time()) + 60)},
        "none": {},
    }[kind]
    fake.script = [Reply(429, header, {"errors": [{"message": "too many requests"}]})]
    with pytest.raises(TransientSendError, match="429") as err:
        transport_for(fake).send(compose(composer, steps[0], people(2)))
    if expected is None:
        assert err.value.retry_after is None
    else:
        assert err.value.retry_after == pytest.approx(expected, abs=3)
    assert err.value.results == []


def test_5xx_is_transient(fake, composer, steps):
    fake.script = [Reply(503, {}, {"errors": [{"message": "service unavailable"}]})]
    with pytest.raises(TransientSendError, match="service unavailable"):
        transport_for(fake).send(compose(composer, steps[0], people(1)))


def test_a_hanging_server_times_out(fake, composer, steps):
    fake.script = [Reply(hang=True)]
    started = time.monotonic()
    with pytest.raises(TransientSendError, match="too slow"):
        transport_for(fake, timeout=0.5).send(compose(composer, steps[0], people(1)))
    assert time.monotonic() - started < 5


def test_an_unreachable_server_is_transient(composer, steps):
    transport = SendGridTransport(API_KEY, host=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransientSendError, match="unreachable"):
        transport.send(compose(composer, steps[0], people(1)))


def test_x_message_id_becomes_the_provider_id(fake, composer, steps):
    msgs = compose(composer, steps[0], people(2)) + compose(composer, steps[1], people(1, 2))
    results = transport_for(fake).send(msgs)
    assert {r.key: r.provider_id for r in results} == {
        msgs[0].key: "fake-1", msgs[1].key: "fake-1", msgs[2].key: "fake-2"}


def test_400_naming_a_recipient_fails_only_that_recipient(fake, composer, steps):
    msgs = compose(composer, steps[0], people(3))
    fake.script = [Reply(400, {}, {"errors": [{
        "message": "Does not contain a valid address.",
        "field": "personalizations.1.to.0.email"}]})]
    results = {r.key: r for r in transport_for(fake).send(msgs)}
    assert not results[msgs[1].key].ok
    assert "Does not contain a valid address." in results[msgs[1].key].error
    assert results[msgs[0].key].ok and results[msgs[2].key].ok
    # SendGrid took nothing from the refused request, so the rest went again, once.
    assert fake.recipients() == [[m.to for m in msgs], [msgs[0].to, msgs[2].to]]


def test_400_about_the_whole_request_fails_all_of_it(fake, composer, steps):
    msgs = compose(composer, steps[0], people(2))
    error = "The from address does not match a verified Sender Identity."
    fake.script = [Reply(400, {}, {"errors": [{"message": error, "field": "from"}]})]
    results = transport_for(fake).send(msgs)
    assert [r.ok for r in results] == [False, False]
    assert all(error in r.error for r in results)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_raise_auth_error(fake, composer, steps, status):
    fake.script = [Reply(status, {}, {"errors": [{"message": "authorization grant is invalid"}]})]
    with pytest.raises(AuthError, match="authorization grant is invalid"):
        transport_for(fake).send(compose(composer, steps[0], people(1)))


def test_a_failure_after_an_accepted_request_reports_what_went_out(fake, composer, steps):
    first = compose(composer, steps[0], people(2))
    second = compose(composer, steps[1], people(2, start=2))
    fake.script = [Reply(202), Reply(500)]
    with pytest.raises(TransientSendError) as err:
        transport_for(fake).send(first + second)
    assert [(r.key, r.ok) for r in err.value.results] == [(m.key, True) for m in first]
