"""Turns a subscriber and an email source into a ready-to-send ``Message``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from funnel.config import Settings
from funnel.core.rendering import RenderedEmail, Renderer, UserText
from funnel.core.sequence import EmailSource, read_email_file
from funnel.core.tokens import Tokens
from funnel.mail.links import Links
from funnel.mail.shared_body import SharedBodies
from funnel.models import Subscriber
from funnel.transports import Message

LIST_ID = "Run Stronger free plan <free-plan.runstronger.example>"
DEFAULT_FIRST_NAME = "there"
# The variables that differ from one recipient to the next (see shared_body.py).
PERSONAL_VARIABLES = (
    "first_name", "email", "unsubscribe_url", "preferences_url", "view_url", "confirm_url",
)


class Composer:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.tokens = Tokens(settings.secret_keys, clock)
        self.links = Links(settings.base_url, self.tokens)
        self.renderer = Renderer(settings.emails_dir)
        self.shared = SharedBodies(self.renderer.render)
        self.domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"

    def system_source(self, name: str) -> EmailSource:
        return read_email_file(Path(self.settings.emails_dir, "system", f"{name}.md"))

    def variables(self, sub: Subscriber, delivery_id: str | None = None) -> dict[str, Any]:
        """Every variable an email may use (documented in emails/README.md)."""
        first = (sub.first_name or "").strip()
        return {
            "first_name": UserText(first) if first else DEFAULT_FIRST_NAME,
            "email": UserText(sub.email),
            "site_url": self.links.page("/"),
            "article_url": self.links.page("/"),
            "plan_url": self.links.page("/free-plan"),
            "unsubscribe_url": self.links.unsubscribe(sub.public_id),
            "preferences_url": self.links.preferences(sub.public_id),
            "view_url": self.links.view(sub.public_id, delivery_id) if delivery_id else "",
            "confirm_url": self.links.confirm(sub.public_id),
            "postal_address": self.settings.postal_address,
            "reason": (
                "You are getting this because you signed up for the Run Stronger "
                "free plan and confirmed your address."
            ),
        }

    def render(self, source: EmailSource, sub: Subscriber, delivery_id: str | None = None,
               extra: dict[str, Any] | None = None) -> RenderedEmail:
        return self.renderer.render(source, {**self.variables(sub, delivery_id), **(extra or {})})

    def message(
        self,
        source: EmailSource,
        sub: Subscriber,
        *,
        key: str,
        now: datetime,
        delivery_id: str | None = None,
        category: str | None = None,
        list_mail: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> Message:
        variables = {**self.variables(sub, delivery_id), **(extra or {})}
        rendered = self.renderer.render(source, variables)
        # Sequence mail goes to many people at once: offer the transport one body
        # for all of them (a provider like SendGrid then sends a step per request).
        shared = (self.shared.split(source, variables, PERSONAL_VARIABLES, rendered)
                  if delivery_id else None)
        headers: dict[str, str] = {}
        if list_mail:
            unsub = self.links.unsubscribe(sub.public_id)
            headers = {
                "List-Unsubscribe": f"<{unsub}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "List-Id": LIST_ID,
            }
        return Message(
            key=key,
            to=sub.email,
            to_name=sub.first_name or None,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            sender=self.settings.mail_from,
            reply_to=self.settings.reply_to,
            date=now,
            message_id=f"<{key}@{self.domain}>",
            headers=headers,
            category=category,
            delivery_id=delivery_id,
            shared=shared[0] if shared else None,
            substitutions=shared[1] if shared else None,
        )
