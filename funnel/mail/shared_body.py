"""One body for many recipients: the batching half of the SendGrid transport.

Each drip email is rendered per recipient (their own links, their name). To send a
step to a thousand people in one API request, the step is also rendered once with
a tag in place of every per-recipient variable. For each recipient we then read
their values back out of their own rendering, occurrence by occurrence, and keep
the pair only if substituting the values into the shared body reproduces their
rendering *exactly*. So what the provider assembles is byte for byte what we
rendered (and what the outbox would write); when a template makes that impossible
(say ``{% if first_name == "there" %}``), that recipient simply gets their own
body and nothing is batched for them.

Every occurrence gets its own tag, because one value is escaped differently in
different places (``O'Brien`` in the HTML layout vs. in Markdown vs. plain text).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from funnel.core.rendering import RenderedEmail
from funnel.core.sequence import EmailSource
from funnel.transports import SharedBody

# SendGrid allows 10,000 bytes of substitutions per personalization; keep a margin.
MAX_SUBSTITUTION_BYTES = 9000
TEMPLATE_TTL_SECONDS = 60.0  # the layout may be edited while a worker runs
MAX_TEMPLATES = 64


@dataclass(frozen=True)
class _Part:
    """One content part of the shared rendering: literals between tags."""

    literals: tuple[str, ...]  # len(tags) + 1 pieces
    tags: tuple[str, ...]

    def body(self) -> str:
        out = [self.literals[0]]
        for tag, lit in zip(self.tags, self.literals[1:]):
            out += [tag, lit]
        return "".join(out)

    def values(self, rendered: str) -> list[str] | None:
        """The per-tag values that turn this part into ``rendered``, or None.

        A left-to-right scan with ``str.find``: linear, no backtracking. It can
        miss a split in contrived cases; then the recipient is just not batched.
        """
        lits = self.literals
        if not rendered.startswith(lits[0]):
            return None
        pos = len(lits[0])
        values: list[str] = []
        last = len(lits) - 1
        for i in range(1, len(lits)):
            lit = lits[i]
            if i == last:
                end = len(rendered) - len(lit)
                if end < pos or not rendered.endswith(lit):
                    return None
                values.append(rendered[pos:end])
                pos = len(rendered)
            else:
                end = rendered.find(lit, pos)
                if end < 0:
                    return None
                values.append(rendered[pos:end])
                pos = end + len(lit)
        return values


@dataclass(frozen=True)
class _Template:
    shared: SharedBody
    html: _Part
    text: _Part
    made_at: float


class SharedBodies:
    """Makes and caches the shared rendering of each email source."""

    def __init__(self, render: Callable[[EmailSource, Mapping[str, Any]], RenderedEmail],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._render = render
        self._monotonic = monotonic
        # Random per process, so no template text can contain a tag by accident.
        self.nonce = secrets.token_hex(4)
        self._placeholder = re.compile(rf"zq{self.nonce}v(\d+)q")
        self._cache: dict[tuple, _Template | None] = {}
        self._lock = threading.Lock()

    def split(self, source: EmailSource, variables: Mapping[str, Any],
              personal: Iterable[str], rendered: RenderedEmail
              ) -> tuple[SharedBody, dict[str, str]] | None:
        """The shared body and this recipient's substitutions, or None if the
        recipient's ``rendered`` email cannot be reproduced from it."""
        names = tuple(n for n in personal if n in variables)
        template = self._template(source, variables, names)
        if template is None:
            return None
        html_values = template.html.values(rendered.html)
        text_values = template.text.values(rendered.text)
        if html_values is None or text_values is None:
            return None
        subs = dict(zip(template.html.tags, html_values))
        subs.update(zip(template.text.tags, text_values))
        size = 0
        for tag, value in subs.items():
            # A value holding a tag could be substituted twice by the provider.
            if self.nonce in value:
                return None
            size += len(tag.encode()) + len(value.encode())
        if size > MAX_SUBSTITUTION_BYTES:
            return None
        if (_apply(template.shared.html, subs) != rendered.html
                or _apply(template.shared.text, subs) != rendered.text):
            return None  # belt and braces: the invariant SendResult relies on
        return template.shared, subs

    def _template(self, source: EmailSource, variables: Mapping[str, Any],
                  names: tuple[str, ...]) -> _Template | None:
        common = tuple(sorted((k, str(v)) for k, v in variables.items() if k not in names))
        key = (source.subject, source.preheader, source.body, names, common)
        now = self._monotonic()
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING and (cached is None or now - cached.made_at < TEMPLATE_TTL_SECONDS):
            return cached  # type: ignore[return-value]
        template = self._make(source, variables, names, now)
        with self._lock:
            if len(self._cache) >= MAX_TEMPLATES:
                self._cache.clear()
            self._cache[key] = template
        return template

    def _make(self, source: EmailSource, variables: Mapping[str, Any],
              names: tuple[str, ...], now: float) -> _Template | None:
        placeholders = {name: f"zq{self.nonce}v{i}q" for i, name in enumerate(names)}
        try:
            rendered = self._render(source, {**variables, **placeholders})
        except Exception:  # noqa: BLE001  (e.g. a filter rejects the placeholder: don't batch)
            return None
        html = self._part(rendered.html, "h")
        text = self._part(rendered.text, "t")
        if html is None or text is None:
            return None
        digest = hashlib.sha256(f"{html.body()}\0{text.body()}".encode()).hexdigest()[:24]
        shared = SharedBody(key=digest, html=html.body(), text=text.body())
        return _Template(shared, html, text, now)

    def _part(self, rendered: str, kind: str) -> _Part | None:
        pieces = self._placeholder.split(rendered)
        literals = tuple(pieces[0::2])
        if any(self.nonce in lit for lit in literals):
            return None  # a placeholder came out mangled (e.g. upper-cased)
        tags = tuple(f"zq{self.nonce}{kind}{j}q" for j in range(len(literals) - 1))
        return _Part(literals, tags)


_MISSING = object()


def _apply(body: str, substitutions: Mapping[str, str]) -> str:
    """What the provider does: replace every tag with its value."""
    if not substitutions:
        return body
    pattern = re.compile("|".join(re.escape(t) for t in substitutions))
    return pattern.sub(lambda m: substitutions[m.group(0)], body)


def apply_substitutions(body: str, substitutions: Mapping[str, str]) -> str:
    """Public for tests and tools: the body a recipient receives."""
    return _apply(body, substitutions)
