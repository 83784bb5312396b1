"""Lints the email files a marketer edits, so a broken email never ships.

Checks every file in ``emails/sequence/`` and ``emails/system/`` and the shared
layout: front matter, unknown variables, links that point nowhere, subject and
preheader length, images without alt text, and a footer without an unsubscribe
link or a postal address. Each problem carries a file and line, printed as
``path:line: error|warning: message``.

Flask-free: the caller passes sample variables (from ``Composer.variables``),
the site's base URL, and a function telling whether a path on the site exists.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from funnel.core.broadcast import BROADCAST_KEYS, parse_archive, parse_filter
from funnel.core.rendering import Renderer
from funnel.core.sequence import (
    EmailFileError,
    EmailSource,
    parse_delay,
    parse_window,
    read_email_file,
)
from funnel.mail.inbox import inbox_problems
from funnel.models import Subscriber
from funnel.plan.coach import CoachFileError, load_coach
from funnel.plan.media import CONTENT_TYPES, ImageError, MediaLibrary, image_size, svg_to_png

if TYPE_CHECKING:
    from flask import Flask

    from funnel.mail.compose import Composer

ERROR = "error"
WARNING = "warning"

SUBJECT_WARN, SUBJECT_MAX, PREHEADER_WARN = 60, 100, 110
# Variables only the layout sees: the rendered email itself.
LAYOUT_VARIABLES = frozenset({"subject", "preheader", "content", "in_plan"})
# Pictures: bigger files load slowly on phones; tiny or huge ones are usually a mistake.
IMAGE_WARN_BYTES, IMAGE_MAX_BYTES = 300_000, 1_000_000
IMAGE_MIN_WIDTH, IMAGE_MAX_WIDTH = 48, 2400
SEQUENCE_KEYS = {"slug": True, "subject": True, "delay": True, "preheader": False,
                 "window": False}
SYSTEM_KEYS = {"slug": True, "subject": True, "preheader": False, "delay": False,
               "window": False}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")
_BROKEN_LINK = re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)")
# What an unknown variable becomes while the rest of a file is checked: a harmless
# address, so one typo is reported once (as unknown) and not again as an empty link.
UNKNOWN = "https://unknown-variable.invalid/"


class _Unknown(ChainableUndefined):
    def __str__(self) -> str:
        return UNKNOWN


@dataclass(frozen=True, order=True)
class Problem:
    path: Path
    line: int
    level: str
    message: str

    def display(self, root: Path | None = None) -> str:
        path = self.path
        if root is not None:
            try:
                path = self.path.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        return f"{path}:{self.line}: {self.level}: {self.message}"

    def __str__(self) -> str:
        return self.display()


def sample_subscriber() -> Subscriber:
    """The made-up reader every preview and check renders for (never saved)."""
    return Subscriber(first_name="Alex", email="alex@example.com", public_id="preview")


def email_files(emails_dir: str | Path) -> list[Path]:
    """Every email a marketer edits: the drip sequence, the newsletter's broadcasts,
    then the system emails."""
    root = Path(emails_dir)
    return (sorted((root / "sequence").glob("*.md")) + sorted((root / "broadcasts").glob("*.md"))
            + sorted((root / "system").glob("*.md")))


NEXT_STEP_FILE = "next-step.md"


def find_source(emails_dir: str | Path, slug: str) -> EmailSource | None:
    """The email whose front matter says ``slug: …``, read fresh from disk."""
    for path in email_files(emails_dir):
        try:
            src = read_email_file(path)
        except EmailFileError:
            continue
        if src.slug == slug:
            return src
    return None


class Checker:
    """One run over an emails folder; ``run()`` returns the problems found."""

    def __init__(
        self,
        emails_dir: str | Path,
        variables: Mapping[str, Any],
        *,
        base_url: str,
        route_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self.emails_dir = Path(emails_dir)
        self.variables = dict(variables)
        self.known = frozenset(self.variables)
        self.base_url = base_url.rstrip("/")
        self.route_exists = route_exists
        # Links the code builds (unsubscribe, view…) are the code's business, not the marketer's.
        self.trusted_urls = {unquote(str(v)) for v in self.variables.values()
                             if str(v).startswith(("http://", "https://"))}
        self._parse_env = SandboxedEnvironment()
        # Lenient twin of the real renderer, so one unknown name doesn't stop the
        # rest of the file being checked (the name itself is reported separately).
        self._loose_env = SandboxedEnvironment(undefined=_Unknown, keep_trailing_newline=True)
        self._md = MarkdownIt("commonmark", {"html": False})
        self.problems: list[Problem] = []

    # -- reporting ---------------------------------------------------------------

    def _add(self, path: Path, line: int, level: str, message: str) -> None:
        self.problems.append(Problem(path, max(int(line), 1), level, message))

    def error(self, path: Path, line: int, message: str) -> None:
        self._add(path, line, ERROR, message)

    def warning(self, path: Path, line: int, message: str) -> None:
        self._add(path, line, WARNING, message)

    # -- the run -----------------------------------------------------------------

    def run(self) -> list[Problem]:
        self.check_layout()
        self.check_coach()
        slugs: dict[str, Path] = {}
        root = self.emails_dir
        if not list((root / "sequence").glob("*.md")):
            self.error(root / "sequence", 1, "the sequence has no emails")
        self.check_next_step()
        for path in email_files(root):
            system = path.parent.name == "system"
            broadcast = path.parent.name == "broadcasts"
            src = self.check_file(path, system=system, broadcast=broadcast)
            if src is None or not src.slug:
                continue
            if src.slug in slugs:
                self.error(path, src.meta_lines.get("slug", 1),
                           f"slug '{src.slug}' is already used by {slugs[src.slug].name}")
            slugs[src.slug] = path
        return sorted(set(self.problems))

    def check_file(self, path: Path, *, system: bool, broadcast: bool = False
                   ) -> EmailSource | None:
        try:
            src = read_email_file(path)
        except EmailFileError as exc:
            self.error(path, exc.line, exc.message)
            return None
        except UnicodeDecodeError:
            self.error(path, 1, "the file is not UTF-8 text")
            return None
        before = len([p for p in self.problems if p.level == ERROR])
        if broadcast:
            self._check_front_matter(src, BROADCAST_KEYS, True)
            self._check_broadcast(src)
        else:
            self._check_front_matter(src, SYSTEM_KEYS if system else SEQUENCE_KEYS, system)
        for key in ("subject", "preheader"):
            if key in src.meta:
                self._check_template(src.path, str(src.meta[key]), src.meta_lines.get(key, 1),
                                     self.known, single_line=True)
        body_ok = self._check_template(src.path, src.body, src.body_line, self.known)
        self._check_lengths(src)
        if body_ok:
            self._check_markdown(src)
        errors_now = len([p for p in self.problems if p.level == ERROR])
        if errors_now == before:
            self._check_renders(src)
        return src

    # -- front matter --------------------------------------------------------------

    def _check_front_matter(self, src: EmailSource, keys: Mapping[str, bool],
                            system: bool) -> None:
        path, lines = src.path, src.meta_lines
        for key, required in keys.items():
            value = src.meta.get(key)
            if required and (value is None or str(value).strip() == ""):
                self.error(path, lines.get(key, 1), f"front matter needs '{key}'")
        for key in src.meta:
            if key not in keys:
                hint = _did_you_mean(str(key), keys)
                self.warning(path, lines.get(str(key), 1),
                             f"unknown front matter key '{key}'{hint}")
        slug = src.meta.get("slug")
        if slug not in (None, "") and not _SLUG.match(str(slug)):
            self.error(path, lines.get("slug", 1),
                       f"slug '{slug}' must be lowercase letters, digits and hyphens")
        if not system and src.meta.get("delay") not in (None, ""):
            try:
                parse_delay(src.meta["delay"])
            except ValueError as exc:
                self.error(path, lines.get("delay", 1), str(exc))
        if src.meta.get("window") is not None:
            try:
                parse_window(src.meta["window"])
            except ValueError as exc:
                self.error(path, lines.get("window", 1), str(exc))

    def _check_broadcast(self, src: EmailSource) -> None:
        """A newsletter issue: named after its file, with a readable archive flag and audience."""
        path, lines = src.path, src.meta_lines
        if src.slug and src.slug != path.stem:
            self.error(path, lines.get("slug", 1),
                       f"slug '{src.slug}' differs from the file name: name the file "
                       f"{src.slug}.md")
        for key, parse in (("archive", parse_archive), ("audience", parse_filter)):
            if key in src.meta:
                try:
                    parse(src.meta[key])
                except ValueError as exc:
                    self.error(path, lines.get(key, 1), str(exc))

    def check_next_step(self) -> None:
        """``next-step.md``: the Markdown piece that ends the plan's last email."""
        path = self.emails_dir / NEXT_STEP_FILE
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8")
        src = EmailSource(path, {}, text, 1)
        if self._check_template(path, text, 1, self.known - {"next_step"}):
            self._check_markdown(src)

    # -- Jinja: syntax and unknown variables -----------------------------------------

    def _check_template(self, path: Path, text: str, first_line: int, known: Iterable[str],
                        *, single_line: bool = False) -> bool:
        """Report syntax errors and unknown variables; True if the template parses."""
        try:
            ast = self._parse_env.parse(text)
            # Compiling catches what parsing lets through: an unknown filter or test
            # (TemplateAssertionError, a TemplateSyntaxError) fails every send.
            self._parse_env.compile(text)
        except TemplateSyntaxError as exc:
            line = first_line if single_line else first_line + (exc.lineno or 1) - 1
            self.error(path, line, f"template syntax: {exc.message}")
            return False
        known = frozenset(known)
        for name in sorted(meta.find_undeclared_variables(ast) - known):
            line = first_line if single_line else first_line + _line_of_name(text, name)
            self.error(path, line, f"unknown variable '{name}'{_did_you_mean(name, known)}")
        return True

    def _loose(self, text: str) -> str:
        try:
            return self._loose_env.from_string(text).render(self.variables)
        except TemplateError:
            return text

    # -- subject and preheader -----------------------------------------------------------

    def _check_lengths(self, src: EmailSource) -> None:
        path, lines = src.path, src.meta_lines
        if src.meta.get("subject") not in (None, ""):
            subject = self._loose(src.subject).replace(UNKNOWN, "").strip()
            n = len(subject)
            line = lines.get("subject", 1)
            if n == 0:
                self.error(path, line, "the subject is empty")
            elif n > SUBJECT_MAX:
                self.error(path, line, f"the subject is {n} characters: keep it under "
                                       f"{SUBJECT_MAX} (ideally {SUBJECT_WARN})")
            elif n > SUBJECT_WARN:
                self.warning(path, line, f"the subject is {n} characters: inboxes cut it "
                                         f"off after about {SUBJECT_WARN}")
        preheader = self._loose(src.preheader).replace(UNKNOWN, "").strip()
        if not preheader:
            self.warning(path, lines.get("preheader", 1),
                         "no preheader: inboxes will show the first words of the body instead")
        elif len(preheader) > PREHEADER_WARN:
            self.warning(path, lines.get("preheader", 1),
                         f"the preheader is {len(preheader)} characters: inboxes show about "
                         f"{PREHEADER_WARN}")

    # -- Markdown: links, images, stray HTML ------------------------------------------------

    def _check_markdown(self, src: EmailSource) -> None:
        markdown = self._loose(src.body)
        md_lines = markdown.splitlines()
        for tok in self._md.parse(markdown):
            if tok.type != "inline" or not tok.map:
                continue
            start, end = tok.map

            def line_of(*needles: str, _s: int = start, _e: int = end) -> int:
                for i in range(_s, min(_e, len(md_lines))):
                    if any(n and n in md_lines[i] for n in needles):
                        return src.body_line + i
                return src.body_line + _s

            for child in tok.children or []:
                if child.type == "link_open":
                    href = str(child.attrGet("href") or "")
                    self._check_href(src.path, line_of(f"]({href}", href, "]("), href, "link")
                elif child.type == "image":
                    href = str(child.attrGet("src") or "")
                    line = line_of(f"]({href}", href, "![")
                    if not child.content.strip():
                        self.error(src.path, line, "image without alt text: write ![what it "
                                                   "shows](address)")
                    if MediaLibrary.name_from_ref(href) is not None:
                        self.check_picture(src.path, line, href)
                    else:
                        self._check_href(src.path, line, href, "image")
                elif child.type == "text":
                    broken = _BROKEN_LINK.search(child.content)
                    if broken:
                        self.error(src.path, line_of(broken.group(0)[:20]),
                                   f"'{broken.group(0)[:60]}' is not read as a link: remove "
                                   "spaces from the address")
                    tag = _HTML_TAG.search(child.content)
                    if tag:
                        self.warning(src.path, line_of(tag.group(0)),
                                     f"HTML '{tag.group(0)[:40]}' shows as typed: use Markdown "
                                     "instead")

    def _check_href(self, path: Path, line: int, href: str, what: str) -> None:
        raw = unquote(href.strip())
        if raw == "":
            self.error(path, line, f"{what} with no address")
            return
        if raw.startswith("#"):
            self.error(path, line, f"{what} to '{raw}' points nowhere in an email")
            return
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme in ("mailto", "tel") and what == "link":
            return
        if scheme not in ("http", "https") or not parts.netloc:
            self.error(path, line, f"{what} to '{raw}' points nowhere in an email: use "
                                   "{{ site_url }} or a full https:// address")
            return
        if raw in self.trusted_urls or raw.startswith(UNKNOWN):
            return
        if raw == self.base_url or raw.startswith(self.base_url + "/"):
            site_path = urlsplit(raw[len(self.base_url):] or "/").path or "/"
            if self.route_exists is not None and not self.route_exists(site_path):
                self.error(path, line, f"{what} to '{site_path}' on our site: there is no "
                                       "such page")
        elif scheme == "http":
            self.warning(path, line, f"{what} to '{raw}' is not https")

    # -- pictures in emails/images/ ---------------------------------------------------------

    def check_picture(self, path: Path, line: int, ref: str) -> None:
        """The file exists, is a picture we can show, and has a sensible size."""
        name = MediaLibrary.name_from_ref(ref) or ""
        suffix = Path(name).suffix.lower()
        if suffix not in CONTENT_TYPES:
            self.error(path, line, f"image '{ref}': '{suffix or name}' pictures are not "
                                   "supported: use SVG, PNG, JPEG or GIF")
            return
        library = MediaLibrary(self.emails_dir / "images")
        file = library.path(name)
        if file is None:
            close = difflib.get_close_matches(name, library.names(), n=1, cutoff=0.6)
            hint = f" (did you mean 'images/{close[0]}'?)" if close else ""
            self.error(path, line, f"image '{ref}' does not exist{hint}: put the file in "
                                   f"{self.emails_dir / 'images'}")
            return
        data = file.read_bytes()
        try:
            width, _height = image_size(data, suffix)
            if suffix == ".svg":
                svg_to_png(data, width=64)  # it must draw, not just parse
        except ImageError as exc:
            self.error(path, line, f"image '{ref}': {exc}")
            return
        if not IMAGE_MIN_WIDTH <= width <= IMAGE_MAX_WIDTH:
            self.error(path, line, f"image '{ref}' is {width} pixels wide: use "
                                   f"{IMAGE_MIN_WIDTH} to {IMAGE_MAX_WIDTH}")
        if len(data) > IMAGE_MAX_BYTES:
            self.error(path, line, f"image '{ref}' is {len(data) // 1000} KB: keep it under "
                                   f"{IMAGE_MAX_BYTES // 1000} KB")
        elif len(data) > IMAGE_WARN_BYTES:
            self.warning(path, line, f"image '{ref}' is {len(data) // 1000} KB: over "
                                     f"{IMAGE_WARN_BYTES // 1000} KB loads slowly on phones")

    def check_coach(self) -> None:
        try:
            coach = load_coach(self.emails_dir)
        except CoachFileError as exc:
            self.error(exc.path, exc.line, exc.message)
            return
        path = self.emails_dir / "coach.yml"
        text = path.read_text(encoding="utf-8")
        line = next((i for i, row in enumerate(text.splitlines(), 1)
                     if row.startswith("photo:")), 1)
        self.check_picture(path, line, coach.photo)

    # -- the real renderer ----------------------------------------------------------------

    def _check_renders(self, src: EmailSource) -> None:
        try:
            rendered = Renderer(self.emails_dir).render(src, self.variables)
        except TemplateError as exc:
            self.error(src.path, src.body_line, f"does not render: {exc}")
            return
        for message in inbox_problems(rendered.html, rendered.text):
            self.warning(src.path, src.body_line, message)

    # -- the layout -----------------------------------------------------------------------

    def check_layout(self) -> None:
        folder = self.emails_dir / "layout"
        known = self.known | LAYOUT_VARIABLES
        sample = {**self.variables, "subject": "Sample subject",
                  "preheader": "Sample preheader", "content": "Sample content"}
        for name in ("base.html", "base.txt"):
            path = folder / name
            if not path.exists():
                self.error(path, 1, f"the layout needs {name}")
                continue
            text = path.read_text(encoding="utf-8")
            if not self._check_template(path, text, 1, known):
                continue
            rendered = self._loose_env.from_string(text).render(sample)
            unsub, postal = str(self.variables.get("unsubscribe_url", "")), str(
                self.variables.get("postal_address", ""))
            visible = rendered
            if name == "base.html":
                page = _Html()
                page.feed(rendered)
                visible = " ".join(page.text.split())
                hrefs = [unquote(h) for h in page.hrefs]
                if not unsub or unquote(unsub) not in hrefs:
                    self.error(path, 1, "the layout has no unsubscribe link "
                                        "(<a href=\"{{ unsubscribe_url }}\">)")
                if not postal or postal not in visible:
                    self.error(path, 1, "the layout has no postal address ({{ postal_address }})")
                for line_no, alt in page.images:
                    if not (alt or "").strip():
                        self.error(path, line_no, "image without alt text in the layout")
                for line_no, href in page.anchors:
                    if href.strip() in ("", "#"):
                        self.error(path, line_no, "link that points nowhere in the layout")
            else:
                if not unsub or unsub not in rendered:
                    self.error(path, 1, "the text layout has no unsubscribe link "
                                        "({{ unsubscribe_url }})")
                if not postal or postal not in rendered:
                    self.error(path, 1, "the text layout has no postal address "
                                        "({{ postal_address }})")
            reason = " ".join(str(self.variables.get("reason", "")).split())
            if reason and reason not in " ".join(visible.split()):
                self.warning(path, 1, "the layout does not say why the reader gets this email "
                                      "({{ reason }})")


class _Html(HTMLParser):
    """Collects links, images and visible text from the rendered layout."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.anchors: list[tuple[int, str]] = []
        self.images: list[tuple[int, str | None]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"] or "")
            self.anchors.append((self.getpos()[0], a["href"] or ""))
        elif tag == "img":
            self.images.append((self.getpos()[0], a.get("alt")))

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    @property
    def text(self) -> str:
        return "".join(self._text)


def _line_of_name(text: str, name: str) -> int:
    """0-based line of the first Jinja tag that mentions ``name``."""
    pattern = re.compile(r"({{|{%)[^}]*?\b" + re.escape(name) + r"\b")
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) if m else 0


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_emails(
    emails_dir: str | Path,
    variables: Mapping[str, Any],
    *,
    base_url: str,
    route_exists: Callable[[str], bool] | None = None,
) -> list[Problem]:
    """Every problem in the emails folder, sorted by file and line."""
    return Checker(emails_dir, variables, base_url=base_url, route_exists=route_exists).run()


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.level == ERROR for p in problems)


# -- checking the files an app serves -----------------------------------------

def route_checker(app: Flask) -> Callable[[str], bool]:
    """Whether a GET on ``path`` reaches a page of this app (a redirect counts)."""
    adapter = app.url_map.bind("localhost")

    def exists(path: str) -> bool:
        try:
            adapter.match(path, method="GET")
        except RequestRedirect:
            return True
        except (NotFound, MethodNotAllowed):
            return False
        return True

    return exists


def sample_variables(composer: Composer) -> dict[str, Any]:
    """Every template variable, filled in for the sample reader."""
    return composer.variables(sample_subscriber(), "preview")


def run_check(app: Flask) -> list[Problem]:
    rt = app.extensions["funnel"]
    return check_emails(
        rt.settings.emails_dir, sample_variables(rt.composer), base_url=rt.settings.base_url,
        route_exists=route_checker(app),
    )
