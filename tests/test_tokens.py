"""Links in emails cannot be forged, reused for another purpose or read, and
survive a SECRET_KEY rotation."""

from __future__ import annotations

import base64
import html
import re
import zlib
from collections.abc import Collection

import pytest
from sqlalchemy import select

from funnel import create_app
from funnel.models import Subscriber
from funnel.runtime import make_worker
from tests.conftest import TEST_SECRET, csrf_token, press_confirm, sign_up, sign_up_and_confirm

EMAIL = "reader.name@example.com"
INVALID = "This link isn't valid"


def state(db, email=EMAIL):
    """What a forged link must not change."""
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == email))
    return (sub.status, sub.first_name, sub.timezone, sub.paused_until, sub.confirmed_at,
            len(sub.consents), len(sub.deliveries))


@pytest.fixture
def links(client, outbox, app, clock):
    """path of each kind of link a confirmed subscriber has been sent."""
    sign_up_and_confirm(client, outbox, EMAIL, "Robin")
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    confirmation, first = outbox.to(EMAIL)
    return {
        "confirm": outbox.link(confirmation, "confirm"),
        "unsubscribe": outbox.link(first, "unsubscribe"),
        "preferences": outbox.link(first, "preferences"),
        "view": outbox.link(first, "view"),
    }


def body(resp) -> str:
    return html.unescape(resp.get_data(as_text=True))


def token_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def pages(client, token: str, skip: Collection[str] = ()):
    """Every page a token can be taken to, except ``skip``, as (name, response)."""
    form = {"csrf_token": csrf_token(client)}
    requests = {
        "confirm": lambda: press_confirm(client, f"/confirm/{token}"),
        "unsubscribe": lambda: client.get(f"/unsubscribe/{token}"),
        "one-click": lambda: client.post(f"/unsubscribe/{token}",
                                         data={"List-Unsubscribe": "One-Click"}),
        "view": lambda: client.get(f"/view/{token}"),
        "preferences": lambda: client.get(f"/preferences/{token}"),
        "data": lambda: client.get(f"/preferences/{token}/data.json"),
    }
    for action, extra in (("pause", {"length": "resume"}), ("resume", {}), ("unsubscribe", {}),
                          ("resubscribe", {}), ("profile", {"first_name": "X", "timezone": "UTC"}),
                          ("erase", {"confirm": "erase"})):
        requests[f"preferences/{action}"] = (
            lambda action=action, extra=extra: client.post(f"/preferences/{token}/{action}",
                                                           data={**form, **extra}))
    for name, request in requests.items():
        if name not in skip:
            yield name, request()


PAGE_OF = {"confirm": {"confirm"}, "unsubscribe": {"unsubscribe", "one-click"},
           "view": {"view"}, "preferences": {"preferences", "data"} | {
               f"preferences/{a}" for a in
               ("pause", "resume", "unsubscribe", "resubscribe", "profile", "erase")}}


def test_each_link_works_only_for_its_own_purpose(client, links, db):
    before = state(db)
    for purpose, path in links.items():
        for name, resp in pages(client, token_of(path), skip=PAGE_OF[purpose]):
            assert resp.status_code == 400, (purpose, name, resp.status_code)
            assert INVALID in body(resp), (purpose, name)
    assert state(db) == before
    # …and each one does work where it belongs.
    assert client.get(links["preferences"]).status_code == 200
    assert client.get(links["view"]).status_code == 200
    assert "already confirmed" in press_confirm(client, links["confirm"]).get_data(as_text=True)
    assert "Unsubscribe?" in client.get(links["unsubscribe"]).get_data(as_text=True)


def _forgeries(token: str) -> dict[str, str]:
    payload, stamp, sig = token.split(".")[-3:]
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    return {
        "truncated": token[:-6],
        "signature cut off": f"{payload}.{stamp}",
        "payload only": payload,
        "signature changed": f"{payload}.{stamp}.{flip(sig, 5)}",
        "payload changed": f"{flip(payload, 3)}.{stamp}.{sig}",
        "timestamp changed": f"{payload}.{flip(stamp, 2)}.{sig}",
        "garbage": "not-a-token",
        "extended": token + "x",
    }


def test_tampered_and_truncated_links_answer_400_and_change_nothing(client, links, db):
    before = state(db)
    for purpose, path in links.items():
        for kind, forged in _forgeries(token_of(path)).items():
            for name, resp in pages(client, forged):
                assert resp.status_code == 400, (purpose, kind, name, resp.status_code)
                assert INVALID in body(resp) and "Error 400" in body(resp), (purpose, kind, name)
    assert state(db) == before


def _decode_segment(segment: str) -> bytes:
    compressed = segment.startswith(".")
    raw = base64.urlsafe_b64decode(segment.lstrip(".") + "=" * (-len(segment.lstrip(".")) % 4))
    return zlib.decompress(raw) if compressed else raw


def test_links_carry_no_readable_address(links):
    for purpose, path in links.items():
        token = token_of(path)
        assert "@" not in token and "reader" not in token.lower()
        # The payload is only base64, not encrypted: what's in it is readable.
        payload = token.rsplit(".", 2)[0]
        decoded = _decode_segment(payload).decode()
        assert EMAIL not in decoded and "reader" not in decoded, (purpose, decoded)
        assert re.fullmatch(r'"[\w-]+"|\["[\w-]+", ?"[\w-]+"\]', decoded), decoded


def _app(app_config, **overrides):
    cfg = {k: v for k, v in app_config.items() if k != "SECRET_KEY_FALLBACKS"}
    return create_app({**cfg, **overrides})


def test_links_survive_a_secret_key_rotation(app, app_config, client, links, outbox, db, clock):
    sign_up(client, "late.confirmer@example.com")
    pending_confirm = outbox.link(outbox.to("late.confirmer@example.com")[0], "confirm")

    rotated = _app(app_config, SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=[TEST_SECRET])
    without = _app(app_config, SECRET_KEY="the-new-secret-key")
    try:
        new_client, bare_client = rotated.test_client(), without.test_client()
        # Links already sent keep working while the old key is a fallback…
        assert new_client.get(links["preferences"]).status_code == 200
        assert new_client.get(links["view"]).status_code == 200
        assert "Welcome" in press_confirm(new_client, pending_confirm).get_data(as_text=True)
        resp = new_client.post(links["preferences"] + "/pause", data={
            "length": "1w", "csrf_token": csrf_token(new_client, links["preferences"])})
        assert resp.status_code == 303
        assert state(db)[3] is not None  # paused
        # …and fail once it is gone.
        for path in links.values():
            resp = bare_client.get(path)
            assert resp.status_code == 400 and INVALID in body(resp), path

        # New links are signed with the new key: the old deployment can't read them.
        public_id = state_public_id(db)
        fresh = rotated.extensions["funnel"].composer.links.preferences(public_id)
        fresh_path = fresh.split("localhost", 1)[1]
        assert new_client.get(fresh_path).status_code == 200
        assert bare_client.get(fresh_path).status_code == 200
        assert client.get(fresh_path).status_code == 400
    finally:
        rotated.extensions["funnel"].engine.dispose()
        without.extensions["funnel"].engine.dispose()


def state_public_id(db, email=EMAIL) -> str:
    db.rollback()
    return db.scalar(select(Subscriber.public_id).where(Subscriber.email == email))


def test_links_signed_before_the_faster_signing_still_open_their_pages(client, links, db, app):
    """Links are now signed without itsdangerous' zlib attempt; links already in
    inboxes (itsdangerous' own tokens, compressed ones included) keep working."""
    public_id = state_public_id(db)
    tokens = app.extensions["funnel"].composer.tokens
    old_style = tokens.make_slowly("preferences", public_id)
    assert client.get(f"/preferences/{old_style}").status_code == 200
    # A payload zlib shrinks is sent compressed by itsdangerous ("." first): an
    # unknown id then, but a genuine signature, so the page says not found, not 400.
    compressed = tokens.make_slowly("preferences", "a" * 40)
    assert compressed.startswith(".")
    assert client.get(f"/preferences/{compressed}").status_code == 404
    assert client.get(f"/preferences/{compressed[:-2]}").status_code == 400
    # And the new tokens are what itsdangerous itself accepts.
    new_style = tokens.make("preferences", public_id)
    assert tokens.load("preferences", new_style) == public_id
    assert client.get(f"/preferences/{new_style}").status_code == 200
