"""SendGrid's v3 Mail Send API, up to 1000 recipients per request.

Messages that share a body (``Message.shared``: one step, rendered once with a tag
wherever a recipient's own link or name goes) go out together: one request with
the shared content and one personalization per recipient carrying their
substitutions, subject, headers and delivery id. Anything else still goes out,
batched only with messages whose bodies are identical.

Failures: 429, 5xx and network trouble raise TransientSendError (the worker
retries with backoff, honouring Retry-After); 401/403 raise AuthError; a 400
fails only the recipients SendGrid names (the rest of that request is sent
again: a 400 means SendGrid accepted nothing), or the whole request when it
names none. Requests already accepted when a later one fails are reported in the
exception's ``results`` so the worker records them and never sends them twice.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from funnel.config import ConfigError
from funnel.transports import AuthError, Message, SendResult, TransientSendError

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)(?:\.|$)")


class SendGridTransport:
    # SendGrid has no idempotency key: a request retried after an unseen 202
    # would send twice, so the worker never resends work that was mid-flight.
    idempotent = False
    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, api_key: str, host: str = DEFAULT_HOST, timeout: float = 10.0,
                 sandbox: bool = False) -> None:
        if not api_key:
            raise ConfigError("SENDGRID_API_KEY must be set when MAIL_TRANSPORT=sendgrid.")
        self.timeout = timeout
        self.sandbox = sandbox
        self.api = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        # The client waits forever by default; a hung connection would stall the worker.
        self.api.client.timeout = timeout

    # -- the Transport interface -------------------------------------------

    def send(self, messages: list[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            for group in self._requests(messages):
                self._send_request(group, results)
        except (TransientSendError, AuthError) as exc:
            exc.results = list(results)  # these went out (or were refused): record them
            raise
        return results

    # -- grouping ------------------------------------------------------------

    def _requests(self, messages: list[Message]) -> Iterator[list[Message]]:
        """Messages that can share one request, in order, at most 1000 each."""
        groups: dict[tuple, list[tuple[list[Message], set[str]]]] = {}
        for msg in messages:
            chunks = groups.setdefault(_group_key(msg), [([], set())])
            chunk, addresses = chunks[-1]
            # SendGrid refuses an address twice in one request.
            if len(chunk) >= MAX_PERSONALIZATIONS or msg.to.lower() in addresses:
                chunk, addresses = [], set()
                chunks.append((chunk, addresses))
            chunk.append(msg)
            addresses.add(msg.to.lower())
        for chunks in groups.values():
            for chunk, _addresses in chunks:
                yield chunk

    # -- one request (and its 400 retries) -----------------------------------

    def _send_request(self, group: list[Message], results: list[SendResult]) -> None:
        pending = [group]
        while pending:
            batch = pending.pop()
            status, headers, body = self._post(self.request_body(batch), [m.key for m in batch])
            if 200 <= status < 300:
                provider_id = headers.get("X-Message-Id")
                log.info("SendGrid accepted %d recipient(s), message id %s", len(batch), provider_id)
                results.extend(SendResult(m.key, True, provider_id=provider_id) for m in batch)
            elif status in (401, 403):
                raise AuthError(f"SendGrid answered {status}: {_error_text(body)}")
            elif status == 429 or status >= 500:
                raise TransientSendError(f"SendGrid answered {status}: {_error_text(body)}",
                                         retry_after=_retry_after(headers), status=status)
            elif status == 413 and len(batch) > 1:
                half = len(batch) // 2  # too large: nothing was accepted, send in halves
                pending += [batch[half:], batch[:half]]
            elif status in (400, 413):
                bad = _named_personalizations(body, len(batch))
                text = _error_text(body)
                if bad and len(bad) < len(batch):
                    # Only these recipients are wrong; SendGrid took nothing, so
                    # the others can be sent again without a duplicate.
                    errors = _errors_by_index(body)
                    for i in sorted(bad):
                        msg = f"SendGrid refused it: {errors.get(i, text)}"
                        results.append(SendResult(batch[i].key, False, error=msg))
                    pending.append([m for i, m in enumerate(batch) if i not in bad])
                else:
                    log.warning("SendGrid refused %d recipient(s): %s", len(batch), text)
                    results.extend(SendResult(m.key, False, error=f"SendGrid refused it: {text}")
                                   for m in batch)
            else:
                # 404, 405, 415…: a configuration problem on our side, not the
                # recipients' fault. Retry (and alert through the logs) rather
                # than fail their mail for good.
                raise TransientSendError(f"unexpected answer from SendGrid ({status}): "
                                         f"{_error_text(body)}")

    def _post(self, body: dict[str, Any], keys: list[str]) -> tuple[int, Any, bytes]:
        try:
            response = self.api.client.mail.send.post(request_body=body)
        except http_errors.HTTPError as exc:
            return exc.status_code, exc.headers, exc.body or b""
        except (OSError, http.client.HTTPException) as exc:
            # Refused connections, resets, and timeouts (TimeoutError is an OSError).
            # Only a refused connection proves the request never arrived.
            raise TransientSendError(f"SendGrid unreachable or too slow "
                                     f"(timeout {self.timeout:g}s): {exc!r}",
                                     unsure=[] if _refused(exc) else keys) from exc
        return response.status_code, response.headers, response.body or b""

    # -- the request body ----------------------------------------------------

    def request_body(self, batch: list[Message]) -> dict[str, Any]:
        """The Mail Send JSON for messages of one group."""
        first = batch[0]
        shared = first.shared if first.substitutions is not None else None
        html, text = (shared.html, shared.text) if shared else (first.html, first.text)
        sender_name, sender_email = email.utils.parseaddr(first.sender)
        body: dict[str, Any] = {
            "from": _address(sender_email, sender_name),
            "subject": first.subject,  # each personalization overrides it
            "content": [
                {"type": "text/plain", "value": text},  # SendGrid wants plain text first
                {"type": "text/html", "value": html},
            ],
            "personalizations": [self.personalization(m, substitute=bool(shared)) for m in batch],
        }
        if first.reply_to:
            name, addr = email.utils.parseaddr(first.reply_to)
            body["reply_to"] = _address(addr, name)
        if first.category:
            body["categories"] = [first.category[:255]]
        if self.sandbox:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    @staticmethod
    def personalization(msg: Message, substitute: bool) -> dict[str, Any]:
        headers = dict(msg.headers)
        headers["Message-ID"] = msg.message_id
        p: dict[str, Any] = {
            "to": [_address(msg.to, msg.to_name) if msg.to_name else {"email": msg.to}],
            "subject": msg.subject,
            "headers": headers,
            # Opaque ids only: SendGrid echoes these in every event it posts back.
            "custom_args": ({"delivery_id": msg.delivery_id} if msg.delivery_id
                            else {"message_key": msg.key}),
        }
        if substitute and msg.substitutions:
            subs = msg.substitutions
            # Encoded as they are, not copied, when already a dict (the composer's).
            p["substitutions"] = subs if type(subs) is dict else dict(subs)
        return p


def _refused(exc: BaseException) -> bool:
    """The connection was refused (urllib wraps the reason in a URLError)."""
    return isinstance(exc, ConnectionRefusedError) or \
        isinstance(getattr(exc, "reason", None), ConnectionRefusedError)


def _group_key(msg: Message) -> tuple:
    if msg.shared is not None and msg.substitutions is not None:
        body = "shared:" + msg.shared.key
    else:
        body = "own:" + hashlib.sha256(f"{msg.html}\0{msg.text}".encode()).hexdigest()
    return (body, msg.sender, msg.reply_to, msg.category)


def _address(addr: str, name: str | None) -> dict[str, str]:
    out = {"email": addr}
    name = (name or "").strip()
    if name:
        # SendGrid splits an unquoted name at "," or ";" and then rejects the parts.
        if any(c in name for c in ',;"'):
            name = '"' + name.replace("\\", "").replace('"', "") + '"'
        out["name"] = name
    return out


def _errors(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_text(body: bytes) -> str:
    messages = []
    for e in _errors(body):
        text = str(e.get("message") or "").strip()
        if e.get("field") not in (None, "", "null"):
            text += f" ({e['field']})"
        messages.append(text)
    if messages:
        return "; ".join(messages)[:1000]
    return body.decode("utf-8", "replace").strip()[:300] or "no details given"


def _errors_by_index(body: bytes) -> dict[int, str]:
    out: dict[int, list[str]] = {}
    for e in _errors(body):
        m = _PERSONALIZATION_FIELD.match(str(e.get("field") or ""))
        if m:
            out.setdefault(int(m.group(1)), []).append(f"{e.get('message', '')} ({e['field']})")
    return {i: "; ".join(texts) for i, texts in out.items()}


def _named_personalizations(body: bytes, count: int) -> set[int]:
    """Indices of the personalizations SendGrid blamed, or empty when any error
    is about the request as a whole."""
    errors = _errors(body)
    if not errors:
        return set()
    by_index = _errors_by_index(body)
    blamed = sum(1 for e in errors if _PERSONALIZATION_FIELD.match(str(e.get("field") or "")))
    if blamed < len(errors) or any(i >= count for i in by_index):
        return set()
    return set(by_index)


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait: Retry-After (seconds or a date), else X-RateLimit-Reset."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None:
                return max(0.0, when.timestamp() - time.time())
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return None
