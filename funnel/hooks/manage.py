"""What the marketer does with endpoints: add, list, remove, enable, send again."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from funnel.core.inputs import pick_names
from funnel.hooks.addresses import UnsafeURL, check
from funnel.hooks.events import EVENT_TYPES, RETRY_FOR
from funnel.hooks.secret_box import SecretBox
from funnel.models import (
    ENDPOINT_ACTIVE,
    ENDPOINT_DISABLED,
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_PENDING,
    WebhookEndpoint,
    WebhookMessage,
)

MAX_ENDPOINTS = 20


class EndpointError(ValueError):
    """The endpoint cannot be registered or changed; the message says why."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_events(raw: Iterable[str]) -> list[str]:
    """Event types from a list or comma/space-separated text; "all" means every one."""
    try:
        return pick_names(raw, EVENT_TYPES, noun="event")
    except ValueError as exc:
        raise EndpointError(str(exc)) from None


def add_endpoint(session: Session, url: str, events: Iterable[str], *, now: datetime,
                 allow_private: bool, box: SecretBox) -> WebhookEndpoint:
    """Register the endpoint. Its signing secret is stored encrypted; the plain one
    is on the returned object as ``plain_secret``, to show once."""
    try:
        check(url, allow_private=allow_private)
    except UnsafeURL as exc:
        raise EndpointError(f"cannot use {url[:200]!r}: {exc}") from exc
    wanted = parse_events(events)
    url = url.strip()
    if session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.url == url)) is not None:
        raise EndpointError("that URL is already registered")
    if (session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0) >= MAX_ENDPOINTS:
        raise EndpointError(f"at most {MAX_ENDPOINTS} endpoints; remove one first")
    plain = new_secret()
    endpoint = WebhookEndpoint(url=url, events=" ".join(wanted), secret=box.seal(plain),
                               state=ENDPOINT_ACTIVE, created_at=now)
    session.add(endpoint)
    session.commit()
    endpoint.plain_secret = plain  # not a column: shown once
    return endpoint


def reveal_secret(session: Session, endpoint_id: int, box: SecretBox) -> str:
    """The plain signing secret, for a marketer who typed their password again."""
    return box.open(get_endpoint(session, endpoint_id).secret)


def endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointError(f"no webhook endpoint {endpoint_id}")
    return endpoint


def remove_endpoint(session: Session, endpoint_id: int) -> None:
    """Delete the endpoint and its outbox (nothing more will be sent to it)."""
    session.delete(get_endpoint(session, endpoint_id))
    session.commit()


def set_enabled(session: Session, endpoint_id: int, enabled: bool, *, now: datetime) -> None:
    endpoint = get_endpoint(session, endpoint_id)
    if enabled:
        endpoint.state, endpoint.disabled_reason, endpoint.disabled_at = ENDPOINT_ACTIVE, None, None
        endpoint.failing_since = None
        # What waited while it was off gets a fresh day of retries, starting now.
        session.execute(
            update(WebhookMessage)
            .where(WebhookMessage.endpoint_id == endpoint_id)
            .where(WebhookMessage.state == MESSAGE_PENDING)
            .values(next_attempt_at=now, give_up_at=now + RETRY_FOR)
        )
    else:
        endpoint.state, endpoint.disabled_at = ENDPOINT_DISABLED, now
        endpoint.disabled_reason = "Disabled by the marketer."
    session.commit()


def send_again(session: Session, message_id: int, *, now: datetime) -> WebhookMessage:
    """Queue a delivered or failed message once more, with the same id and body."""
    msg = session.get(WebhookMessage, message_id)
    if msg is None:
        raise EndpointError("no such delivery")
    if msg.state not in (MESSAGE_DELIVERED, MESSAGE_FAILED):
        raise EndpointError(f"this delivery is {msg.state}; only delivered or failed ones "
                            "can be sent again")
    msg.state, msg.attempts, msg.next_attempt_at = MESSAGE_PENDING, 0, now
    msg.give_up_at = now + RETRY_FOR
    session.commit()
    return msg


def recent(session: Session, *, limit: int = 50, endpoint_id: int | None = None
           ) -> list[WebhookMessage]:
    q = select(WebhookMessage).order_by(WebhookMessage.id.desc()).limit(limit)
    if endpoint_id is not None:
        q = q.where(WebhookMessage.endpoint_id == endpoint_id)
    return list(session.scalars(q))
