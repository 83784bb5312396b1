"""The outbox writes its .eml files without Python's email package (it was most
of a worker pass): any mail reader must see exactly what the email package's
message said, for awkward names, subjects and bodies too."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime

import pytest

from funnel.transports import Message
from funnel.transports.outbox import OutboxTransport, eml_bytes, to_email_message

BASE = Message(
    key="20261201T090000-welcome-abc", to="reader@example.com", subject="Week one: the hip stretch",
    html="<html><body><p>Hi Sam,</p>\n<p>Stretch.</p></body></html>\n",
    text="Hi Sam,\n\nStretch.\n", sender="Run Stronger <plan@runstronger.example>",
    reply_to="coach@runstronger.example", date=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    message_id="<20261201T090000-welcome-abc@runstronger.example>",
    headers={"List-Unsubscribe": "<https://news.example.com/unsubscribe/" + "Ab1_-" * 30 + ">",
             "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
             "List-Id": "Run Stronger free plan <free-plan.runstronger.example>"},
)

TRICKY = {
    "plain": {},
    "non-ASCII sender name": {"sender": "Zoë Müller – Coach <plan@runstronger.example>"},
    "quoted sender name": {"sender": '"Run, Stronger" <plan@runstronger.example>'},
    "comma in an unquoted name": {"reply_to": "Coach, Run <c@runstronger.example>"},
    "non-ASCII subject": {"subject": "Zoë, week one — ünd 😀 stretch"},
    "long ASCII subject": {"subject": "Week one of the plan: " + "stretch your hips and back " * 6},
    "long non-ASCII subject": {"subject": "Semaine un — étirez vos hanches " * 5},
    "long lines": {"html": "<p>" + "x=y " * 700 + "</p>", "text": "word " * 400},
    "a line over 998 without spaces": {"html": "<p>" + "a" * 3000 + "</p>"},
    "CRLF and lone CR": {"text": "one\r\ntwo\rthree\n\nfour\r\n", "html": "<p>a</p>\r\n<p>b</p>"},
    "trailing spaces, tabs, dots and From": {
        "text": "line with spaces   \n\ttabbed\t\n.\n..\nFrom here on\n=3D literal\n"},
    "non-ASCII bodies": {"text": "Zoë 😀 café\n" * 3, "html": "<p>Zoë 😀 — café</p>\n" * 3},
    "mostly non-Latin bodies": {"text": "пробежка " * 80, "html": "<p>" + "ランニング" * 100},
    "empty text": {"text": ""},
    "no trailing newline": {"text": "no newline at the end", "html": "<p>x</p>"},
    "no Reply-To or list headers": {"reply_to": "", "headers": {}},
    "IDN address": {"to": "anna@xn--bcher-kva.example"},
}


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def what_a_reader_sees(data: bytes) -> tuple:
    msg = parsed(data)
    headers = [(name, str(value)) for name, value in msg.items() if name != "Content-Type"]
    parts = [(p.get_content_type(), p.get_content_charset(), p.get_content())
             for p in msg.iter_parts()]
    return msg.get_content_type(), headers, parts


@pytest.mark.parametrize("case", TRICKY, ids=list(TRICKY))
def test_the_direct_writer_says_what_the_email_package_said(case):
    msg = dataclasses.replace(BASE, **TRICKY[case])
    new, old = eml_bytes(msg), to_email_message(msg).as_bytes()
    assert what_a_reader_sees(new) == what_a_reader_sees(old)
    assert parsed(new).defects == [] and all(p.defects == [] for p in parsed(new).iter_parts())
    lines = new.split(b"\r\n")
    assert b"\n" not in new.replace(b"\r\n", b"") and b"\r" not in new.replace(b"\r\n", b"")
    assert max(len(line) for line in lines) <= 998
    assert new.isascii()


def test_the_one_click_unsubscribe_link_is_written_as_is():
    """The email package wrote a long link as RFC 2047 words, which List-Unsubscribe
    readers (mail providers) do not decode; the link now stands as it is."""
    head = eml_bytes(BASE).split(b"\r\n\r\n")[0].decode()
    link = BASE.headers["List-Unsubscribe"]
    assert f"List-Unsubscribe: {link}" in head
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head


@pytest.mark.parametrize("field", ["subject", "to", "sender"])
def test_a_line_break_in_a_header_is_refused_as_before(field):
    msg = dataclasses.replace(BASE, **{field: "x@example.com\r\nBcc: victim@example.com"})
    with pytest.raises(ValueError):
        to_email_message(msg).as_bytes()
    with pytest.raises(ValueError):
        eml_bytes(msg)


def test_the_outbox_writes_what_eml_bytes_says(tmp_path):
    outbox = OutboxTransport(tmp_path)
    msg = dataclasses.replace(BASE, **TRICKY["non-ASCII bodies"])
    [result] = outbox.send([msg])
    assert result.ok
    assert [p.name for p in tmp_path.iterdir()] == [f"{msg.key}.eml"]  # no temporary left
    written = outbox.path_for(msg.key).read_bytes()
    assert what_a_reader_sees(written) == what_a_reader_sees(to_email_message(msg).as_bytes())
