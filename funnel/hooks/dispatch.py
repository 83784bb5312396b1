"""The worker's webhook step: deliver what is due from the outbox, signed.

Each message is claimed with a lease, sent with the Standard Webhooks headers
(``webhook-id`` stays the same on every retry, so receivers can drop repeats),
and its outcome recorded in a second transaction. A worker killed mid-request
leaves the message claimed; once the lease runs out another pass sends it again:
delivery is at least once, and the id makes it once for a receiver that checks.

Failed attempts are retried on the Standard Webhooks schedule (5 s, 5 min, 30 min,
2 h, 5 h, 10 h …) until 24 hours after the event. An endpoint that has failed
every attempt for 24 hours is disabled, with the reason kept for the admin page.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from funnel.db import claim
from funnel.hooks.addresses import UnsafeURL, parse
from funnel.hooks.post import Answer, Cancel, PostError, post
from funnel.hooks.secret_box import PLAIN_PREFIX, SecretBox, SecretUnreadable
from funnel.models import (
    ENDPOINT_ACTIVE,
    ENDPOINT_DISABLED,
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_PENDING,
    MESSAGE_SENDING,
    WebhookEndpoint,
    WebhookMessage,
)

log = logging.getLogger(__name__)

RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                  timedelta(hours=2), timedelta(hours=5), timedelta(hours=10))
DISABLE_AFTER = timedelta(hours=24)
MAX_BATCHES_PER_PASS = 5


@dataclass(frozen=True)
class HookSettings:
    timeout: float = 5.0
    max_response_bytes: int = 16 * 1024
    allow_private: bool = False
    batch_size: int = 50
    # SECRET_KEY, then its fallbacks: the key of the signing secrets at rest.
    secret_keys: tuple[str, ...] = ()

    @property
    def lease(self) -> timedelta:
        # Longer than any one request can take, so a live worker is never overtaken.
        return timedelta(seconds=max(60.0, self.timeout * 3))

    @classmethod
    def from_config(cls, config) -> HookSettings:
        return cls(
            timeout=float(config.get("WEBHOOKS_TIMEOUT", 5.0)),
            max_response_bytes=int(config.get("WEBHOOKS_MAX_RESPONSE_BYTES", 16 * 1024)),
            allow_private=bool(config.get("WEBHOOKS_ALLOW_PRIVATE", False)),
            batch_size=int(config.get("WEBHOOKS_BATCH_SIZE", 50)),
            secret_keys=(config.get("SECRET_KEY") or "", *config.get("SECRET_KEY_FALLBACKS", [])),
        )


def seal_plain_secrets(session: Session, box: SecretBox) -> int:
    """Encrypt secrets an older version stored in plain text; how many."""
    rows = list(session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.secret.like(f"{PLAIN_PREFIX}%"))))
    for endpoint in rows:
        endpoint.secret = box.seal(endpoint.secret)
    if rows:
        session.commit()
    return len(rows)


@dataclass
class HookReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """How long after failed attempt number ``attempts`` (1-based) to try again."""
    base = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    return base * rng.uniform(0.9, 1.1)


class Dispatcher:
    """Delivers the outbox. Holds no state between passes; any number may run."""

    def __init__(self, sessions: sessionmaker[Session], settings: HookSettings, *,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        # The signature's timestamp is checked by the receiver against its own
        # clock, so it is the real time of the attempt, whatever ``now`` says.
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self._box: SecretBox | None = None
        # Cancelled by the worker's SIGTERM: the request in flight ends at once and
        # what this pass claimed but did not finish goes back for the next worker.
        self.cancel = Cancel()

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(self.settings.secret_keys)
        return self._box

    def run(self, now: datetime, stop: threading.Event | None = None) -> HookReport:
        report = HookReport()
        with self.sessions() as s:
            seal_plain_secrets(s, self.box)
        for _ in range(MAX_BATCHES_PER_PASS):
            if self._stopping(stop):
                break
            ids = self.claim(now)
            if not ids:
                break
            for i, message_id in enumerate(ids):
                if self._stopping(stop):
                    self.release(ids[i:], now)
                    return report
                self.deliver(message_id, now, report)
        return report

    def _stopping(self, stop: threading.Event | None) -> bool:
        return self.cancel.cancelled or (stop is not None and stop.is_set())

    def release(self, ids: list[int], now: datetime) -> None:
        """Hand claimed messages back untried: the next worker sends them at once,
        without counting an attempt or waiting for the lease to run out."""
        with self.sessions() as s:
            s.execute(
                update(WebhookMessage)
                .where(WebhookMessage.id.in_(ids), WebhookMessage.state == MESSAGE_SENDING)
                .values(state=MESSAGE_PENDING, lease_until=None, next_attempt_at=now,
                        attempts=WebhookMessage.attempts - 1)
            )
            s.commit()

    def claim(self, now: datetime) -> list[int]:
        with self.sessions() as s:
            q = (
                select(WebhookMessage.id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
                .where(WebhookEndpoint.state == ENDPOINT_ACTIVE)
                .where(or_(
                    and_(WebhookMessage.state == MESSAGE_PENDING,
                         WebhookMessage.next_attempt_at <= now),
                    # Claimed by a worker that died mid-request: its lease ran out.
                    and_(WebhookMessage.state == MESSAGE_SENDING,
                         WebhookMessage.lease_until < now),
                ))
                .order_by(WebhookMessage.next_attempt_at, WebhookMessage.id)
                .limit(self.settings.batch_size)
            )
            return claim(s, q, WebhookMessage, state=MESSAGE_SENDING,
                         lease_until=now + self.settings.lease,
                         attempts=WebhookMessage.attempts + 1, last_attempt_at=now)

    def deliver(self, message_id: int, now: datetime, report: HookReport) -> None:
        with self.sessions() as s:
            msg = s.get(WebhookMessage, message_id)
            if msg is None or msg.state != MESSAGE_SENDING:
                return  # scrubbed by an erasure since the claim
            endpoint = msg.endpoint
            url, secret, body, msg_id = endpoint.url, endpoint.secret, msg.payload, msg.msg_id
            s.rollback()  # hold no locks during the request
        answer: Answer | None = None
        error: str | None = None
        try:
            secret = self.box.open(secret)
            answer = post(parse(url), body.encode(), self.sign(secret, msg_id, body),
                          timeout=self.settings.timeout,
                          max_bytes=self.settings.max_response_bytes,
                          allow_private=self.settings.allow_private, cancel=self.cancel)
            if not 200 <= answer.status < 300:
                error = f"HTTP {answer.status}"
        except (PostError, UnsafeURL, SecretUnreadable) as exc:
            error = str(exc)
        if error is not None and self.cancel.cancelled:
            # Cut short by a stop, not the endpoint's fault: sent again, same id.
            self.release([message_id], now)
            return
        self.record(message_id, now, answer, error, report)

    def sign(self, secret: str, msg_id: str, body: str) -> dict[str, str]:
        at = datetime.fromtimestamp(int(self.wall_clock()), UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body),
            "Content-Type": "application/json",
        }

    def record(self, message_id: int, now: datetime, answer: Answer | None,
               error: str | None, report: HookReport) -> None:
        with self.sessions() as s:
            q = select(WebhookMessage).where(WebhookMessage.id == message_id)
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update()
            msg = s.scalar(q)
            if msg is None or msg.state != MESSAGE_SENDING:
                s.rollback()
                return
            endpoint = msg.endpoint
            msg.lease_until = None
            msg.response_status = answer.status if answer else None
            msg.response_body = answer.body[:1000] if answer else None
            msg.error = error[:1000] if error else None
            if error is None:
                msg.state = MESSAGE_DELIVERED
                msg.delivered_at = now
                msg.next_attempt_at = None
                endpoint.failing_since = None
                report.delivered += 1
            else:
                if now >= msg.give_up_at:
                    msg.state = MESSAGE_FAILED
                    msg.next_attempt_at = None
                    report.failed += 1
                else:
                    msg.state = MESSAGE_PENDING
                    msg.next_attempt_at = min(now + retry_delay(msg.attempts, self.rng),
                                              msg.give_up_at)
                    report.retrying += 1
                if self._note_failure(endpoint, now, error):
                    report.disabled += 1
            s.commit()

    def _note_failure(self, endpoint: WebhookEndpoint, now: datetime,
                      error: str) -> bool:
        """Disable an endpoint that has failed every attempt for a day. True if it was."""
        if endpoint.failing_since is None:
            endpoint.failing_since = now
            return False
        if endpoint.state != ENDPOINT_ACTIVE or now - endpoint.failing_since < DISABLE_AFTER:
            return False
        endpoint.state = ENDPOINT_DISABLED
        endpoint.disabled_at = now
        endpoint.disabled_reason = (
            f"Disabled: every attempt failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC. "
            f"Last error: {error}"[:1000])
        log.warning("webhook endpoint %s disabled after failing for a day", endpoint.id)
        return True
