"""Markdown emails → subject, HTML (one shared layout, CSS inlined) and plain text.

Templates run in Jinja's sandbox with strict undefined variables. Values that come
from a subscriber are escaped for Markdown before the Markdown is parsed, so a
name like ``[click](http://x)`` shows as typed, never as a link.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import FileSystemLoader, StrictUndefined, meta, nodes, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup

from funnel.core.sequence import EmailSource

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


class Tags(tuple):
    """A reader's tags for templates: ``{% if "race" in tags %}`` tests one, and
    ``{{ tags }}`` prints them as "race, plan-pdf"."""

    def __str__(self) -> str:
        return ", ".join(self)


class UserText(str):
    """A value typed by a subscriber: escaped wherever it lands in Markdown."""


def _finalize(value: Any) -> Any:
    if isinstance(value, UserText):
        return _MD_SPECIAL.sub(r"\\\1", value)
    return value


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True)
class Picture:
    """Where a picture from ``emails/images/`` is served, and its display size."""

    url: str
    width: int
    height: int


# (reference as written, e.g. "images/x.svg", for_email) -> the picture, or None
PictureResolver = Callable[[str, bool], "Picture | None"]


class Renderer:
    """Renders email sources with the layout in ``emails/layout/``."""

    def __init__(self, emails_dir: str | Path,
                 pictures: PictureResolver | None = None) -> None:
        self.emails_dir = Path(emails_dir)
        self.pictures = pictures
        self._body_env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, finalize=_finalize,
            keep_trailing_newline=True,
        )
        self._layout_env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.emails_dir / "layout")),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            auto_reload=True,
        )
        self._md = MarkdownIt("commonmark", {"html": False, "typographer": False})
        self._compiled: dict[str, Any] = {}
        self._heading_names: dict[tuple[str, str], frozenset[str]] = {}
        self._headings: dict[tuple, tuple[str, str]] = {}
        self._used: dict[tuple, frozenset[str]] = {}
        self._stamps: tuple[float, tuple] | None = None

    def _compile(self, text: str):
        # A batch renders the same step for hundreds of people: compile it once.
        template = self._compiled.get(text)
        if template is None:
            if len(self._compiled) > 256:
                self._compiled.clear()
            template = self._compiled[text] = self._body_env.from_string(text)
        return template

    def heading(self, source: EmailSource, variables: Mapping[str, Any]) -> tuple[str, str]:
        """Subject and preheader, exactly as ``render`` makes them.

        A batch asks this for every recipient of a step, and the heading rarely
        reads more than their first name: remembered by the values it reads."""
        names = self._heading_names.get((source.subject, source.preheader))
        if names is None:
            try:
                names = frozenset(meta.find_undeclared_variables(self._body_env.parse(
                    source.subject)) | meta.find_undeclared_variables(
                    self._body_env.parse(source.preheader)))
            except Exception:  # noqa: BLE001  (rendering below says what is wrong)
                names = frozenset({"\0"})
            if len(self._heading_names) > 256:
                self._heading_names.clear()
            self._heading_names[(source.subject, source.preheader)] = names
        try:
            # The type too: a name the subscriber typed is escaped, "there" is not.
            key = (source.subject, source.preheader,
                   tuple(sorted((n, type(variables[n]), variables[n]) for n in names)))
            hash(key)
        except (KeyError, TypeError):
            key = None  # unknown or unhashable: rendered (and StrictUndefined says why)
        cached = self._headings.get(key) if key is not None else None
        if cached is not None:
            return cached
        heading = (self._compile(source.subject).render(variables).strip(),
                   self._compile(source.preheader).render(variables).strip())
        if key is not None:
            if len(self._headings) > 4096:
                self._headings.clear()
            self._headings[key] = heading
        return heading

    def used_names(self, source: EmailSource) -> frozenset[str] | None:
        """Every variable the email and its layout read, or None if unknown."""
        texts = (source.subject, source.preheader, source.body)
        # The layout may be edited while a worker runs: its files' times are in the
        # key, looked at every 2 s. A variable left out by a stale answer makes the
        # render fail (strict undefined), which holds the email: never a wrong one.
        now = time.monotonic()
        if self._stamps is None or now - self._stamps[0] > 2.0:
            try:
                self._stamps = (now, tuple(sorted(
                    (p.name, p.stat().st_mtime_ns) for p in (self.emails_dir / "layout").iterdir())))
            except OSError:
                return None
        stamps = self._stamps[1]
        key = (texts, stamps)
        cached = self._used.get(key)
        if cached is not None:
            return cached
        try:
            names: set[str] = set()
            for text in texts:
                names |= meta.find_undeclared_variables(self._body_env.parse(text))
            loader = self._layout_env.loader
            assert loader is not None
            for name in loader.list_templates():
                text = loader.get_source(self._layout_env, name)[0]
                names |= meta.find_undeclared_variables(self._layout_env.parse(text))
        except Exception:  # noqa: BLE001  (the render itself reports what is wrong)
            return None
        if len(self._used) > 256:
            self._used.clear()
        self._used[key] = result = frozenset(names)
        return result

    def prints_only(self, source: EmailSource, names: set[str]) -> bool:
        """True when the email and its layout use ``names`` only by printing them
        (``{{ name }}``) or testing them whole (``{% if name %}``): then no value
        can change the email's structure (see mail/shared_body.py)."""
        derived = names | {"subject", "preheader", "content"}
        checks = [(self._body_env, text, names)
                  for text in (source.subject, source.preheader, source.body)]
        loader = self._layout_env.loader
        assert loader is not None
        try:
            for name in loader.list_templates():
                text = loader.get_source(self._layout_env, name)[0]
                checks.append((self._layout_env, text, derived))
        except OSError:
            return False
        return all(_prints_only(env, text, used) for env, text, used in checks)

    def render(self, source: EmailSource, variables: Mapping[str, Any]) -> RenderedEmail:
        subject, preheader = self.heading(source, variables)
        markdown = self._compile(source.body).render(variables)
        tokens = self._md.parse(markdown)
        self._place_pictures(tokens, for_email=True)
        _style_buttons(tokens)
        body_html = self._md.renderer.render(tokens, self._md.options, {})
        body_text = markdown_to_text(tokens)
        context = {**variables, "subject": subject, "preheader": preheader,
                   "in_plan": source.path.parent.name == "sequence"
                   or source.path.parent.parent.name == "sequences"}
        html = self._layout_env.get_template("base.html").render(
            **context, content=Markup(body_html)
        )
        text = self._layout_env.get_template("base.txt").render(**context, content=body_text)
        html = css_inline.inline(html)
        return RenderedEmail(subject, preheader, html, _tidy_text(text))


    def render_body(self, source: EmailSource, variables: Mapping[str, Any]) -> str:
        """The body alone as HTML for a web page: no layout, pictures as SVG."""
        tokens = self._md.parse(self._compile(source.body).render(variables))
        self._place_pictures(tokens, for_email=False)
        return str(self._md.renderer.render(tokens, self._md.options, {}))

    def _place_pictures(self, tokens: list, *, for_email: bool) -> None:
        """``images/x.svg`` → its served address (PNG in mail), with its size."""
        if self.pictures is None:
            return
        for tok in tokens:
            for child in tok.children or []:
                if child.type != "image":
                    continue
                picture = self.pictures(str(child.attrGet("src") or ""), for_email)
                if picture is not None:
                    child.attrSet("src", picture.url)
                    child.attrSet("width", str(picture.width))
                    child.attrSet("height", str(picture.height))


# A link written [text](url "button") is the email's one big action: a button made
# of inline styles (mail programs drop style sheets), at least 44 px tall to tap.
BUTTON_TITLE = "button"
BUTTON_STYLE = ("display:inline-block;background:#b3261e;color:#ffffff;font-weight:bold;"
                "font-size:18px;line-height:1.3;padding:14px 26px;border-radius:6px;"
                "text-decoration:none")


def _style_buttons(tokens: list) -> None:
    for tok in tokens:
        for child in tok.children or []:
            if child.type == "link_open" and child.attrGet("title") == BUTTON_TITLE:
                child.attrs.pop("title", None)
                child.attrSet("style", BUTTON_STYLE)


def _prints_only(env: SandboxedEnvironment, text: str, names: set[str]) -> bool:
    try:
        ast = env.parse(text)
    except Exception:  # noqa: BLE001  (the full render reports template errors)
        return False
    allowed: set[int] = set()
    for out in ast.find_all(nodes.Output):
        allowed.update(id(n) for n in out.nodes if isinstance(n, nodes.Name))
    for cond in ast.find_all(nodes.If):
        allowed.add(id(cond.test))
    return all(id(n) in allowed for n in ast.find_all(nodes.Name) if n.name in names)


def _tidy_text(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def markdown_to_text(tokens: list) -> str:
    """A readable plain-text version from the same Markdown: links kept as URLs."""
    out: list[str] = []
    list_stack: list[list[int | None]] = []  # per open list: [next number or None]
    pending_prefix = ""
    for tok in tokens:
        t = tok.type
        if t == "heading_open":
            pending_prefix = ""
        elif t == "heading_close":
            title = out.pop() if out else ""
            line = "=" if tok.tag == "h1" else "-"
            out.append(f"{title}\n{line * len(title)}\n\n")
        elif t == "bullet_list_open":
            list_stack.append([None])
        elif t == "ordered_list_open":
            list_stack.append([int(tok.attrGet("start") or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            list_stack.pop()
            if not list_stack:
                out.append("\n")
        elif t == "list_item_open":
            counter = list_stack[-1]
            indent = "  " * (len(list_stack) - 1)
            if counter[0] is None:
                pending_prefix = f"{indent}- "
            else:
                pending_prefix = f"{indent}{counter[0]}. "
                counter[0] += 1
        elif t == "paragraph_close":
            out.append("\n" if list_stack else "\n\n")
        elif t == "blockquote_open":
            pending_prefix = "> "
        elif t == "hr":
            out.append("----\n\n")
        elif t in ("fence", "code_block"):
            out.append(tok.content + "\n")
        elif t == "inline":
            out.append(pending_prefix + _inline_text(tok.children or []))
            pending_prefix = ""
    return "".join(out)


def _inline_text(children: list) -> str:
    parts: list[str] = []
    link_stack: list[tuple[str, int]] = []
    for c in children:
        if c.type == "text" or c.type == "code_inline":
            parts.append(c.content)
        elif c.type in ("softbreak",):
            parts.append(" ")
        elif c.type == "hardbreak":
            parts.append("\n")
        elif c.type == "link_open":
            link_stack.append((str(c.attrGet("href") or ""), len(parts)))
        elif c.type == "link_close" and link_stack:
            href, start = link_stack.pop()
            label = "".join(parts[start:])
            if href and href != label:
                parts.append(f" ({href})")
        elif c.type == "image":
            alt = c.content or "image"
            parts.append(f"[{alt}]")
    return "".join(parts)
