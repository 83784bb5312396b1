"""Webhooks from the mail provider: verify the signature first, then hand over.

SendGrid signs each POST with ECDSA (P-256, SHA-256) over the timestamp header
followed by the raw body; the public key is ``SENDGRID_WEBHOOK_PUBLIC_KEY``
(base64 DER, as SendGrid's settings page shows it, or PEM).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, current_app, request

from funnel import runtime
from funnel.http.extensions import csrf
from funnel.subscribers import provider_events as events

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# A captured request can be replayed only this long (and clocks may differ a little).
MAX_AGE_SECONDS = 300
# What well-formed headers look like, checked before anything is converted: a
# Unix time in seconds, and a base64 DER ECDSA signature (about 96 characters).
TIMESTAMP_FORMAT = re.compile(r"[0-9]{1,12}")
SIGNATURE_FORMAT = re.compile(r"[A-Za-z0-9+/]{16,200}={0,2}")


class WebhookKeyError(ValueError):
    """SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used."""


@functools.lru_cache(maxsize=4)
def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise WebhookKeyError(f"not a public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise WebhookKeyError("SendGrid signs with an ECDSA P-256 key; this is another kind")
    return key


def signature_problem(key: ec.EllipticCurvePublicKey, signature: str | None,
                      timestamp: str | None, body: bytes, now: datetime) -> str | None:
    """Why the request is not SendGrid's, or None when it is."""
    if not signature or not timestamp:
        return "missing signature"
    if not (TIMESTAMP_FORMAT.fullmatch(timestamp) and SIGNATURE_FORMAT.fullmatch(signature)):
        return "malformed signature"
    try:
        sent = int(timestamp)
        sig = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return "malformed signature"
    if abs(now.timestamp() - sent) > MAX_AGE_SECONDS:
        return "stale timestamp"
    try:
        key.verify(sig, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    return None


@bp.post("/sendgrid")
@csrf.exempt  # SendGrid has no session; the signature is the authentication
def sendgrid():
    configured = current_app.config.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or ""
    if not configured:
        log.error("SendGrid event webhook called but SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
        return {"error": "webhook not configured"}, 503
    try:
        key = load_public_key(configured)
    except WebhookKeyError as exc:
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY: %s", exc)
        return {"error": "webhook not configured"}, 503
    body = request.get_data(cache=False)
    problem = signature_problem(key, request.headers.get(SIGNATURE_HEADER),
                                request.headers.get(TIMESTAMP_HEADER), body, runtime.now())
    if problem:
        log.warning("SendGrid webhook refused: %s", problem)
        return {"error": problem}, 403
    try:
        data = json.loads(body)
        report = events.record_events(runtime.session(), data, runtime.now())
    except (json.JSONDecodeError, UnicodeDecodeError, events.MalformedEvents) as exc:
        return {"error": f"malformed body: {exc}"}, 400
    return {"recorded": report.recorded, "duplicates": report.duplicates,
            "ignored": report.ignored}, 200
