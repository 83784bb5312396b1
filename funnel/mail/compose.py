"""Turns a subscriber and an email source into a ready-to-send ``Message``."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from funnel.config import Settings
from funnel.core.rendering import RenderedEmail, Renderer, Tags, UserText
from funnel.core.sequence import EmailSource, read_email_file
from funnel.core.tokens import Tokens
from funnel.mail.links import Links
from funnel.mail.shared_body import SharedBodies
from funnel.models import Subscriber
from funnel.plan.coach import Coach, CoachFileError, load_coach
from funnel.plan.media import MediaLibrary
from funnel.transports import Message, SharedBody

LIST_ID = "Run Stronger free plan <free-plan.runstronger.example>"
# The newsletter is its own list: a reader's mail program files and filters it apart.
NEWSLETTER_LIST_ID = "Run Stronger newsletter <newsletter.runstronger.example>"
DEFAULT_FIRST_NAME = "there"
# The variables that differ from one recipient to the next (see shared_body.py).
PERSONAL_VARIABLES = (
    "first_name", "email", "unsubscribe_url", "preferences_url", "view_url", "confirm_url",
    "my_plan_url", "my_plan_pdf_url",
)
# Links we make ourselves: a str for everyone, so the occurrences that may share a
# substitution tag are the same in every recipient's template (a name is a str
# "there" for some and the subscriber's text for others, so it never shares).
LINK_VARIABLES = frozenset(PERSONAL_VARIABLES) - {"first_name", "email"}
# Used only while emails/coach.yml is missing or broken (`emails check` says which).
FALLBACK_COACH = Coach(name="The Run Stronger team", role="Run Stronger", bio="", photo="",
                       photo_alt="", sign_off="Run well,", reply_to="",
                       reply_invite="Hit reply and tell us how it went.")


# The marketer's closing piece for the plan (emails/next-step.md), placed where an
# email writes {{ next_step }}. It is spliced into the Markdown before rendering, so
# it uses the same variables and batches like the rest of the email.
NEXT_STEP_FILE = "next-step.md"
_NEXT_STEP = re.compile(r"\{\{-?\s*next_step\s*-?\}\}")


class Composer:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.tokens = Tokens(settings.secret_keys, clock)
        self.links = Links(settings.base_url, self.tokens)
        self.media = MediaLibrary(Path(settings.emails_dir) / "images")
        self.renderer = Renderer(settings.emails_dir,
                                 self.media.resolver(lambda: self.links.base_url))
        self._coach: tuple[float, Coach] | None = None
        self.shared = SharedBodies(self.renderer.render, heading=self.renderer.heading,
                                   printed_only=self.renderer.prints_only,
                                   shareable=LINK_VARIABLES)
        self.domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
        self._next_step: tuple[int, str] | None = None
        # Plain strings: building a Path costs more than the stat that checks the file.
        self._coach_path = os.path.join(settings.emails_dir, "coach.yml")
        self._next_step_path = os.path.join(settings.emails_dir, NEXT_STEP_FILE)
        self._coach_vars: tuple[tuple, dict[str, str]] | None = None
        self._with_next_step: dict[int, tuple[EmailSource, EmailSource]] = {}

    def system_source(self, name: str) -> EmailSource:
        return read_email_file(Path(self.settings.emails_dir, "system", f"{name}.md"))

    @property
    def coach(self) -> Coach:
        """emails/coach.yml, read again whenever the marketer saves it."""
        try:
            mtime = os.stat(self._coach_path).st_mtime
        except OSError:
            return FALLBACK_COACH
        if self._coach is None or self._coach[0] != mtime:
            try:
                self._coach = (mtime, load_coach(self.settings.emails_dir))
            except CoachFileError:
                return FALLBACK_COACH
        return self._coach[1]

    def coach_variables(self) -> dict[str, str]:
        coach = self.coach
        photo = (self.media.ref(self.links.base_url, coach.photo_name, for_email=True)
                 if coach.photo else None)
        if self._coach_vars is not None and self._coach_vars[0] == (coach, photo):
            return self._coach_vars[1]
        made = {
            "coach_name": coach.name, "coach_role": coach.role,
            "coach_sign_off": coach.sign_off, "coach_reply_to": coach.reply_to,
            "coach_reply_invite": coach.reply_invite,
            "coach_photo_url": photo.url if photo else "", "coach_photo_alt": coach.photo_alt,
        }
        self._coach_vars = ((coach, photo), made)
        return made

    @property
    def reply_to(self) -> str:
        return self.settings.reply_to or self.coach.reply_to

    def variables(self, sub: Subscriber, delivery_id: str | None = None,
                  source: EmailSource | None = None,
                  used: frozenset[str] | None = None) -> dict[str, Any]:
        """Every variable an email may use (documented in emails/README.md).
        With ``source``, signed links it does not use are left out: signing is
        most of composing a batched email."""
        if used is None and source is not None:
            used = self.renderer.used_names(source)
        return {**self.common_variables(),
                **_Personal(self.links, used if source is not None else None)(sub, delivery_id)}

    def common_variables(self) -> dict[str, Any]:
        """The variables that are the same for every recipient."""
        return {
            **self.coach_variables(),
            "site_url": self.links.page("/"),
            "article_url": self.links.page("/"),
            "plan_url": self.links.page("/free-plan"),
            "postal_address": self.settings.postal_address,
            "reason": (
                "You are getting this because you signed up for the Run Stronger "
                "free plan and confirmed your address."
            ),
            "next_step": "",  # replaced by emails/next-step.md (see with_next_step)
            # Where the reader is with the plan; set for "already on the list" only.
            "plan_status": "",
        }

    def with_next_step(self, source: EmailSource) -> EmailSource:
        """``source`` with ``{{ next_step }}`` replaced by the text of emails/next-step.md."""
        if "next_step" not in source.body:
            return source
        try:
            stamp = os.stat(self._next_step_path).st_mtime_ns
        except OSError:
            return source
        if self._next_step is None or self._next_step[0] != stamp:
            self._next_step = (stamp, Path(self._next_step_path).read_text(encoding="utf-8"))
            self._with_next_step.clear()
        # The same object for every recipient of a step: the caches keyed by its
        # text (templates, shared bodies) then hash and compare it only once.
        # (EmailSource holds a dict, so it is kept by identity, with itself.)
        cached = self._with_next_step.get(id(source))
        if cached is not None and cached[0] is source:
            return cached[1]
        text = self._next_step[1]
        spliced = dataclasses.replace(source, body=_NEXT_STEP.sub(lambda _m: text, source.body))
        if len(self._with_next_step) > 256:
            self._with_next_step.clear()
        self._with_next_step[id(source)] = (source, spliced)
        return spliced

    def render(self, source: EmailSource, sub: Subscriber, delivery_id: str | None = None,
               extra: dict[str, Any] | None = None) -> RenderedEmail:
        return self.renderer.render(self.with_next_step(source),
                                    {**self.variables(sub, delivery_id), **(extra or {})})

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
        return _Batch(self, source, now, category, list_mail, extra).message(sub, key, delivery_id)

    def messages(
        self,
        source: EmailSource,
        recipients: Sequence[tuple[Any, str, str | None]],
        *,
        now: datetime,
        category: str | None = None,
        list_mail: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> list[Message | Exception]:
        """``message`` for many ``(subscriber, key, delivery_id)`` of one email:
        what is the same for all of them (files, layout, links' keys, the shared
        body's template) is looked up once. An email that cannot be composed is
        its exception, in its place: one broken recipient does not stop the rest."""
        try:
            batch = _Batch(self, source, now, category, list_mail, extra)
        except Exception as exc:  # noqa: BLE001  (the file itself is broken: everyone held)
            return [exc] * len(recipients)
        out: list[Message | Exception] = []
        for sub, key, delivery_id in recipients:
            try:
                out.append(batch.message(sub, key, delivery_id))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out


class _Personal:
    """A recipient's own variables, with the links of one batch signed at one moment.
    ``used`` (when known) leaves out the links the email never reads."""

    def __init__(self, links: Links, used: frozenset[str] | None) -> None:
        def maker(purpose: str, *names: str) -> Callable[[object], str] | None:
            wanted = used is None or any(n in used for n in names)
            return links.maker(purpose) if wanted else None

        self.plan = maker("plan", "my_plan_url", "my_plan_pdf_url")
        self.unsubscribe = links.maker("unsubscribe")  # also the List-Unsubscribe header
        self.preferences = maker("preferences", "preferences_url")
        self.view = maker("view", "view_url")
        self.confirm = maker("confirm", "confirm_url")

    def __call__(self, sub: Any, delivery_id: str | None) -> dict[str, Any]:
        first = (sub.first_name or "").strip()
        pid = sub.public_id
        plan = self.plan(pid) if self.plan else ""
        return {
            "my_plan_url": plan,
            "my_plan_pdf_url": plan + ".pdf",
            "first_name": UserText(first) if first else DEFAULT_FIRST_NAME,
            "email": UserText(sub.email),
            "unsubscribe_url": self.unsubscribe(pid),
            "preferences_url": self.preferences(pid) if self.preferences else "",
            "view_url": self.view([pid, delivery_id]) if self.view and delivery_id else "",
            "confirm_url": self.confirm(pid) if self.confirm else "",
            # Read by conditions, not printed into place: an email that uses it is
            # rendered per reader (see _Batch), never from the shared body.
            "tags": Tags(sorted(getattr(sub, "tag_names", None) or ())),
        }


class _Batch:
    """One email for any number of recipients: everything but their own values
    worked out once (see ``Composer.messages``)."""

    def __init__(self, composer: Composer, source: EmailSource, now: datetime,
                 category: str | None, list_mail: bool, extra: dict[str, Any] | None) -> None:
        self.composer, self.now, self.category, self.list_mail = composer, now, category, list_mail
        self.source = source = composer.with_next_step(source)
        used = self.used = composer.renderer.used_names(source)
        self.personal_values = _Personal(composer.links, used)
        extra = extra or {}
        common = {**composer.common_variables(), **extra}
        # Sequence mail goes to many people at once: offer the transport one body
        # for all of them (a provider like SendGrid then sends a step per request).
        # Built from that body when it provably gives the same bytes, else rendered.
        self.personal = [n for n in PERSONAL_VARIABLES if used is None or n in used]
        # What the email never reads must not make each recipient's template differ.
        self.common = {k: v for k, v in common.items()
                       if k not in PERSONAL_VARIABLES or used is None or k in used}
        self.overrides = {k: v for k, v in self.common.items() if k in PERSONAL_VARIABLES}
        self.shared_key: tuple | None = None  # the shared template's, from the first recipient
        # Content by tag differs between readers in ways the shared body cannot
        # substitute: each reader of such an email gets their own rendering.
        self.by_tags = used is None or "tags" in used
        self.sender, self.reply_to = composer.settings.mail_from, composer.reply_to

    def message(self, sub: Any, key: str, delivery_id: str | None) -> Message:
        composer = self.composer
        own = self.personal_values(sub, delivery_id)
        used = self.used
        variables = {**self.common, **(own if used is None else
                                       {k: v for k, v in own.items() if k in used}),
                     **self.overrides}
        shared: tuple[SharedBody, dict[str, str]] | None = None
        if delivery_id and not self.by_tags and composer.settings.fast_compose:
            if self.shared_key is None:
                self.shared_key = composer.shared.common_key(variables, self.personal)
            fast = composer.shared.compose(self.source, variables, self.personal,
                                           common=self.shared_key)
        else:
            fast = None
        if fast is not None:
            rendered, shared_body, subs = fast
            shared = (shared_body, subs)
        else:
            rendered = composer.renderer.render(self.source, variables)
            shared = (composer.shared.split(self.source, variables, self.personal, rendered)
                      if delivery_id and not self.by_tags else None)
        headers: dict[str, str] = {}
        if self.list_mail:
            headers = {
                "List-Unsubscribe": f"<{own['unsubscribe_url']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "List-Id": (NEWSLETTER_LIST_ID if self.source.path.parent.name == "broadcasts"
                            else LIST_ID),
            }
        return Message(
            key=key,
            to=sub.email,
            to_name=sub.first_name or None,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            sender=self.sender,
            reply_to=self.reply_to,
            date=self.now,
            message_id=f"<{key}@{composer.domain}>",
            headers=headers,
            category=self.category,
            delivery_id=delivery_id,
            shared=shared[0] if shared else None,
            substitutions=shared[1] if shared else None,
        )
