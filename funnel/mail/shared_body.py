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
different places (``O'Brien`` in the HTML layout vs. in Markdown vs. plain text),
except where the probes of ``compose`` showed two occurrences of one of our own
links come out alike for every character: those share a tag, so a link printed five
times is sent once per recipient (the substitutions are most of a request's JSON).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from funnel.core.rendering import RenderedEmail, UserText
from funnel.core.sequence import EmailSource
from funnel.mail.shared_learning import _LINK_CHARS, LINK_ALPHABET, _Fast, learn
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
    variables: tuple[int, ...] = ()  # per tag, the index of its personal variable

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
    fast: _Fast | None = None


class SharedBodies:
    """Makes and caches the shared rendering of each email source."""

    def __init__(self, render: Callable[[EmailSource, Mapping[str, Any]], RenderedEmail],
                 monotonic: Callable[[], float] = time.monotonic,
                 heading: Callable[[EmailSource, Mapping[str, Any]], tuple[str, str]] | None = None,
                 printed_only: Callable[[EmailSource, set[str]], bool] | None = None,
                 shareable: frozenset[str] = frozenset()) -> None:
        self._render = render
        # Variables whose occurrences may share one tag (see ``_merge_alike``).
        self._shareable = shareable
        # Without these two, every recipient is rendered in full (``split``).
        self._heading = heading
        self._printed_only = printed_only
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
        subs = self._substitutions(template, html_values, text_values)
        if subs is None:
            return None
        if (_apply(template.shared.html, subs) != rendered.html
                or _apply(template.shared.text, subs) != rendered.text):
            return None  # belt and braces: the invariant SendResult relies on
        return template.shared, subs

    def _substitutions(self, template: _Template, html_values: list[str],
                       text_values: list[str]) -> dict[str, str] | None:
        """Tag -> value for one recipient, or None when batching cannot be trusted."""
        subs = dict(zip(template.html.tags, html_values))
        subs.update(zip(template.text.tags, text_values))
        size = 0
        for tag, value in subs.items():
            # A value holding a tag could be substituted twice by the provider.
            if self.nonce in value:
                return None
            size += len(tag.encode()) + len(value.encode())
        return subs if size <= MAX_SUBSTITUTION_BYTES else None

    @staticmethod
    def common_key(variables: Mapping[str, Any], personal: Iterable[str]) -> tuple:
        """What the template depends on besides the email and the kinds of the
        personal values: the same for every recipient of a batch, so ``compose``
        may be given it rather than work it out for each."""
        names = {n for n in personal if n in variables}
        return tuple(sorted((k, str(v)) for k, v in variables.items() if k not in names))

    def _template(self, source: EmailSource, variables: Mapping[str, Any],
                  names: tuple[str, ...], common: tuple | None = None) -> _Template | None:
        if common is None:
            common = self.common_key(variables, names)
        # A name typed by the subscriber is escaped, "there" is not: two templates.
        kinds = tuple(type(variables[n]).__name__ for n in names)
        key = (source.subject, source.preheader, source.body, names, common, kinds)
        now = self._monotonic()
        cached = self._cache.get(key, _MISSING)
        if isinstance(cached, _Template) and now - cached.made_at < TEMPLATE_TTL_SECONDS:
            return cached
        if cached is None:
            return None
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
        fast = None
        if (self._heading is not None and self._printed_only is not None
                and self._printed_only(source, set(names))):
            fast = learn(self._render, self.nonce, source, variables, names,
                         html.variables, text.variables)
            if fast is not None:
                html, text = _merge_alike(html, text, fast,
                                          {i for i, n in enumerate(names) if n in self._shareable})
        digest = hashlib.sha256(f"{html.body()}\0{text.body()}".encode()).hexdigest()[:24]
        shared = SharedBody(key=digest, html=html.body(), text=text.body())
        return _Template(shared, html, text, now, fast)

    def _part(self, rendered: str, kind: str) -> _Part | None:
        pieces = self._placeholder.split(rendered)
        literals = tuple(pieces[0::2])
        if any(self.nonce in lit for lit in literals):
            return None  # a placeholder came out mangled (e.g. upper-cased)
        tags = tuple(f"zq{self.nonce}{kind}{j}q" for j in range(len(literals) - 1))
        return _Part(literals, tags, tuple(int(i) for i in pieces[1::2]))

    def compose(self, source: EmailSource, variables: Mapping[str, Any],
                personal: Iterable[str], *, common: tuple | None = None
                ) -> tuple[RenderedEmail, SharedBody, dict[str, str]] | None:
        """The recipient's email, the shared body and their substitutions, built
        from the shared body without rendering the recipient; None when that
        cannot be shown to give exactly their full rendering (then render and
        ``split``). ``common``: ``common_key(variables, personal)``, if known."""
        names = tuple(n for n in personal if n in variables)
        template = self._template(source, variables, names, common)
        if template is None or template.fast is None or template.fast.broken:
            return None
        fast = template.fast
        values: list[str] = []
        for i, name in enumerate(names):
            v = variables[name]
            if not v or not fast.alphabets[i].issuperset(v):
                return None
            if type(v) is UserText and (v != v.strip() or "  " in v):
                return None  # Markdown would fold or strip the spaces
            values.append(v)
        html_values = [values[i].translate(t) for i, t in zip(fast.html_vars, fast.html_tables)]
        text_values = [values[i].translate(t) for i, t in zip(fast.text_vars, fast.text_tables)]
        subs = self._substitutions(template, html_values, text_values)
        if subs is None:
            return None
        assert self._heading is not None
        subject, preheader = self._heading(source, variables)
        email = RenderedEmail(subject, preheader, _join(template.html.literals, html_values),
                              _join(template.text.literals, text_values))
        if not fast.verified:
            # The first recipient of each template is also rendered in full: a
            # mismatch turns the shortcut off for this template.
            if self._render(source, variables) != email:
                fast.broken = True
                return None
            fast.verified = True
        return email, template.shared, subs


_MISSING = object()


def _merge_alike(html: _Part, text: _Part, fast: _Fast,
                 shareable: set[int]) -> tuple[_Part, _Part]:
    """One tag for the occurrences of a ``shareable`` variable whose learnt maps
    agree on ``LINK_ALPHABET`` (in the HTML and the text alike: a link's ``&``
    differs, its other characters do not), so one substitution serves them all.
    ``compose`` then takes such a variable only when its value is in that
    alphabet; any other recipient goes through ``split``, whose exact check
    refuses a shared tag that would need two values. The maps are the same in
    every recipient's template, so recipients keep sharing one body."""
    first: dict[tuple, str] = {}

    def tags(part: _Part, maps: tuple[dict[str, str], ...]) -> _Part:
        merged = tuple(first.setdefault((var, tuple(cmap.get(c) for c in LINK_ALPHABET)), tag)
                       if var in shareable else tag
                       for tag, var, cmap in zip(part.tags, part.variables, maps, strict=True))
        return dataclasses.replace(part, tags=merged)

    fast.alphabets = tuple(a & _LINK_CHARS if i in shareable else a
                           for i, a in enumerate(fast.alphabets))
    return tags(html, fast.html_maps), tags(text, fast.text_maps)


def _join(literals: tuple[str, ...], values: list[str]) -> str:
    out = [literals[0]]
    for value, lit in zip(values, literals[1:]):
        out += [value, lit]
    return "".join(out)


def _apply(body: str, substitutions: Mapping[str, str]) -> str:
    """What the provider does: replace every tag with its value."""
    if not substitutions:
        return body
    pattern = re.compile("|".join(re.escape(t) for t in substitutions))
    return pattern.sub(lambda m: substitutions[m.group(0)], body)


def apply_substitutions(body: str, substitutions: Mapping[str, str]) -> str:
    """Public for tests and tools: the body a recipient receives."""
    return _apply(body, substitutions)


# -- composing without rendering each recipient ------------------------------
#
# ``split`` needs the recipient's full rendering (Markdown, layout, CSS inlining:
# most of the worker's time). ``compose`` gets the same bytes without it. Each
# personal variable appears in the shared rendering at known places, and what
# the pipeline does to a value at one place is learnt once per template, by
# rendering it with probe values: a map from each character of an alphabet to
# what comes out (``&`` → ``&amp;`` in HTML, ``\&amp;`` for a name in the subject…).
# A recipient is composed this way only when
# - the templates (body, subject, preheader, layout) use each personal variable
#   only by printing it, or as the whole test of an ``{% if %}`` (and the value is
#   non-empty, like every probe), so no value can change the structure;
# - every character of each value is in the alphabet that was learnt, and an
#   adversarial probe (Markdown emphasis runs, escapes, entities) came out exactly
#   as the character map predicts at every place, so the value cannot interact
#   with its neighbours (a URL inside Markdown text fails this: then the
#   narrower letters-and-digits alphabet is tried, else every recipient is
#   rendered in full as before);
# - the first recipient of each template, rendered in full, matched byte for byte.


