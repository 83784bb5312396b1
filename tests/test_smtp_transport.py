"""The SMTP transport against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from funnel.config import ConfigError
from funnel.transports import AuthError, Message, TransientSendError
from funnel.transports.smtp import SMTPTransport
from tests.smtp_support import DROP, SMTPServer


def message(n: int, to: str | None = None) -> Message:
    return Message(
        key=f"k{n}", to=to or f"reader{n}@example.com", subject=f"Week {n}: easy miles",
        html=f"<p>Hello {n}</p><p>.a line that starts with a dot</p>",
        text=f"Hello {n}\n.a line that starts with a dot\n",
        sender="Run Stronger <plan@runstronger.example>",
        date=datetime(2026, 12, 1, 9, tzinfo=UTC), message_id=f"<m{n}@runstronger.example>",
        headers={"List-Unsubscribe": f"<https://runstronger.example/u/{n}>"},
    )


@pytest.fixture
def server(tmp_path):
    with SMTPServer(tmp_path / "tls") as s:
        yield s


_OPEN: list[SMTPTransport] = []


@pytest.fixture(autouse=True)
def _close_transports():
    yield
    while _OPEN:
        _OPEN.pop().close()


def transport(server: SMTPServer, url: str | None = None) -> SMTPTransport:
    t = SMTPTransport(url or server.url, timeout=5, ca_file=str(server.ca_file))
    _OPEN.append(t)
    return t


def test_starttls_login_and_one_connection_for_many_messages(server):
    t = transport(server)
    first = t.send([message(i) for i in range(3)])
    second = t.send([message(i) for i in range(3, 6)])
    assert [r.ok for r in first + second] == [True] * 6
    assert first[0].provider_id == "Q00001"  # the server's queue id
    assert t.connections == 1 and len(server.handler.peers()) == 1
    got = server.handler.last_to("reader4@example.com")
    assert got["Subject"] == "Week 4: easy miles"
    assert got["List-Unsubscribe"] == "<https://runstronger.example/u/4>"
    assert got["Message-ID"] == "<m4@runstronger.example>"
    # Dot-stuffing: the line starting with "." arrives whole.
    assert ".a line that starts with a dot" in got.get_body(("plain",)).get_content()
    assert server.handler.received[0].sender == "plan@runstronger.example"


def test_a_connection_the_server_closed_is_opened_again(tmp_path):
    with SMTPServer(tmp_path / "tls", idle_timeout=0.3) as s:
        t = transport(s)
        assert t.send([message(1)])[0].ok
        time.sleep(0.8)  # the server times the idle connection out
        assert t.send([message(2)])[0].ok
        assert t.connections == 2 and s.handler.times("reader2@example.com") == 1
        t.close()


def test_implicit_tls(tmp_path):
    with SMTPServer(tmp_path / "tls", tls="tls", login=False) as s:
        assert s.url.startswith("smtps://")
        t = transport(s)
        assert t.send([message(1)])[0].ok
        assert s.handler.times("reader1@example.com") == 1
        t.close()


def test_a_wrong_password_is_an_auth_error(server):
    url = server.url.replace("s3cret", "wrong")
    with pytest.raises(AuthError, match="refused our credentials"):
        transport(server, url).send([message(1)])
    assert server.handler.received == []


def test_no_password_over_a_connection_without_tls(tmp_path):
    with SMTPServer(tmp_path / "tls", tls="none", login=False) as s:
        with pytest.raises(AuthError, match="not sent in the clear"):
            transport(s, s.url.replace("smtp://", "smtp://user:pw@")).send([message(1)])
        # Without a login, a plain relay (a local Postfix) is fine.
        t = transport(s)
        assert t.send([message(1)])[0].ok
        t.close()


def test_4xx_retries_the_rest_then_5xx_fails_only_that_message(server):
    t = transport(server)
    server.handler.rcpt_script["reader1@example.com"] = ["451 4.3.0 try again later",
                                                         "550 5.1.1 no such mailbox"]
    with pytest.raises(TransientSendError, match="451") as caught:
        t.send([message(0), message(1), message(2)])
    assert [(r.key, r.ok) for r in caught.value.results] == [("k0", True)]
    results = t.send([message(1), message(2)])  # what the worker retries
    assert [(r.key, r.ok) for r in results] == [("k1", False), ("k2", True)]
    assert "550 5.1.1 no such mailbox" in results[0].error
    assert server.handler.counts() == {"reader0@example.com": 1, "reader2@example.com": 1}


def test_a_connection_dropped_before_the_data_sends_the_rest_once(server):
    t = transport(server)
    server.handler.rcpt_script["reader2@example.com"] = [DROP]
    batch = [message(i) for i in range(5)]
    with pytest.raises(TransientSendError, match="connection") as caught:
        t.send(batch)
    settled = {r.key for r in caught.value.results}
    assert settled == {"k0", "k1"} and all(r.ok for r in caught.value.results)
    results = t.send([m for m in batch if m.key not in settled])
    assert all(r.ok for r in results)
    assert server.handler.counts() == {f"reader{i}@example.com": 1 for i in range(5)}
    assert t.connections == 2


def test_a_connection_dropped_after_the_data_is_unknown_and_not_resent(server):
    t = transport(server)
    server.handler.data_script["reader1@example.com"] = [DROP]
    with pytest.raises(TransientSendError) as caught:
        t.send([message(i) for i in range(3)])
    by_key = {r.key: r for r in caught.value.results}
    assert by_key["k0"].ok and not by_key["k0"].unknown
    assert by_key["k1"].unknown and "cannot arrive twice" in by_key["k1"].error
    assert "k2" not in by_key  # retried later
    assert server.handler.times("reader1@example.com") == 1  # the server did queue it


@pytest.mark.parametrize("url", ["", "http://example.com", "smtp://", "smtp://h:notaport"])
def test_a_bad_smtp_url_is_refused_with_what_to_set(url):
    with pytest.raises(ConfigError, match="SMTP_URL"):
        SMTPTransport(url)


def test_the_password_never_shows(server):
    assert "s3cret" not in repr(transport(server))
