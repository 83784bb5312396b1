"""Bad input that used to get through: international addresses and first names
carrying control or bidi characters. One rule (funnel.core.inputs) for every way in."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from funnel.models import Subscriber
from tests.conftest import csrf_token, sign_up
from tests.security_support import personal_path, subscriber

BAD_NAMES = {
    "ESC": "Pat\x1b[31m",
    "BEL": "Pat\x07",
    "RLO": "Pat\u202egnp.exe",
    "LINE SEPARATOR": "Pat\u2028Bcc: x",
    "PARAGRAPH SEPARATOR": "Pat\u2029Lee",
    "DEL": "Pat\x7f",
    "LRI": "Pat\u2066",
    "NUL": "Pat\x00",
    "TAB": "Pat\tSmith",
}
GOOD_NAMES = ["Zoë", "José María", "Åsa-Lena", "O'Brien", "محمد", "石川", "Mehrnāz", "Ravi🏃"]


def count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count(Subscriber.id)))


# -- international addresses ---------------------------------------------------------

def test_idn_domains_are_stored_and_sent_as_punycode(app, client, db, outbox):
    resp = sign_up(client, "anna@bücher.example")
    assert resp.status_code == 303
    sub = subscriber(db, "anna@xn--bcher-kva.example")
    assert sub is not None  # stored as IDNA, so the address is the same however typed
    assert sign_up(client, "anna@xn--bcher-kva.example").status_code == 303
    assert count(db) == 1


def test_an_idn_address_gets_a_valid_to_header(app, client, db, outbox):
    from funnel.transports import Message
    from funnel.transports.outbox import eml_bytes

    sign_up(client, "anna@bücher.example")
    sub = subscriber(db, "anna@xn--bcher-kva.example")
    msg = Message(key="k", to=sub.email, subject="s", html="<p>x</p>", text="x",
                  sender="a@example.com", date=sub.created_at, message_id="<m@example.com>")
    header = eml_bytes(msg).split(b"\r\n\r\n")[0]
    assert b"To: anna@xn--bcher-kva.example" in header
    assert b"=?utf-8?" not in header.split(b"To:")[1].split(b"\r\n")[0]


@pytest.mark.parametrize("address", ["jürgen@example.com", "用户@example.com", "Ωmega@example.org"])
def test_non_ascii_local_parts_are_refused_with_a_clear_message(client, db, address):
    resp = sign_up(client, address)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "before the @" in html and "letters a–z" in html
    assert f'value="{address}"' in html  # kept, so it can be corrected
    assert count(db) == 0


def test_import_refuses_non_ascii_local_parts_and_converts_idn(runner, db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,first_name\njürgen@example.com,J\nanna@bücher.example,Anna\n",
                    encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert "line 2" in result.output and "before the @" in result.output
    assert subscriber(db, "anna@xn--bcher-kva.example") is not None
    assert count(db) == 1


# -- first names -------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(BAD_NAMES))
def test_sign_up_refuses_control_and_bidi_characters(client, db, kind):
    resp = sign_up(client, "pat@example.com", BAD_NAMES[kind])
    if kind == "NUL":  # refused before the form is read (funnel/web/nul_guard.py)
        assert resp.status_code == 400
        assert "NUL character" in resp.get_data(as_text=True)
        assert "first_name" in resp.get_data(as_text=True)
    else:
        assert resp.status_code == 422, kind
        assert "first name" in resp.get_data(as_text=True).lower()
    assert count(db) == 0


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_real_names_from_everywhere_are_accepted(client, db, name):
    assert sign_up(client, "pat@example.com", name).status_code == 303
    assert subscriber(db, "pat@example.com").first_name == name


@pytest.mark.parametrize("kind", ["ESC", "RLO", "LINE SEPARATOR", "BEL"])
def test_preferences_refuse_the_same_names(app, client, db, kind):
    sign_up(client, "pat@example.com", "Pat")
    path = personal_path(app, db, "pat@example.com", "preferences")
    resp = client.post(f"{path}/profile", data={
        "csrf_token": csrf_token(client, path), "first_name": BAD_NAMES[kind],
        "timezone": "Europe/London"})
    assert resp.status_code == 422
    assert subscriber(db, "pat@example.com").first_name == "Pat"


def test_import_refuses_the_same_names(runner, db, tmp_path):
    path = tmp_path / "list.csv"
    rows = "".join(f"n{i}@example.com,{name}\n" for i, name in enumerate(BAD_NAMES.values())
                   if "\n" not in name and "\x00" not in name)
    path.write_text("email,first_name\n" + rows + "ok@example.com,Zoë\n", encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.output.count("first name") >= len(BAD_NAMES) - 2, result.output
    assert count(db) == 1 and subscriber(db, "ok@example.com").first_name == "Zoë"


def test_one_rule_for_every_way_in():
    from funnel.core.inputs import FunnelError, clean_first_name

    for name in BAD_NAMES.values():
        with pytest.raises(FunnelError):
            clean_first_name(name)
    assert [clean_first_name(n) for n in GOOD_NAMES] == GOOD_NAMES
    assert clean_first_name("  ") is None
