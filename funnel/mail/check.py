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

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from jinja2 import TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from funnel.core.broadcast import BROADCAST_KEYS, parse_archive, parse_filter, parse_subjects
from funnel.core.rendering import Renderer
from funnel.core.sequence import (
    EmailFileError,
    EmailSource,
    parse_delay,
    parse_window,
    plan_folder,
    read_email_file,
    sequence_files,
)
from funnel.mail.check_automations import problems as automation_problems
from funnel.mail.check_content import ContentChecks
from funnel.mail.check_support import (
    _SLUG,
    ERROR,
    NEXT_STEP_FILE,
    WARNING,
    Problem,
    _did_you_mean,
    _Html,
    _line_of_name,
    _Unknown,
    email_files,
    sample_subscriber,
)
from funnel.mail.inbox import inbox_problems
from funnel.plan.coach import CoachFileError, load_coach

if TYPE_CHECKING:
    from flask import Flask

    from funnel.mail.compose import Composer


# Variables only the layout sees: the rendered email itself.
LAYOUT_VARIABLES = frozenset({"subject", "preheader", "content", "in_plan"})
SEQUENCE_KEYS = {"slug": True, "subject": True, "delay": True, "preheader": False,
                 "window": False}
SYSTEM_KEYS = {"slug": True, "subject": True, "preheader": False, "delay": False,
               "window": False}


class Checker(ContentChecks):
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
        if not sequence_files(root):
            self.error(plan_folder(root), 1, "the sequence has no emails")
        for path, line, level, message in automation_problems(root):
            (self.error if level == ERROR else self.warning)(path, line, message)
        self.check_next_step()
        for path in email_files(root):
            system = path.parent.name in ("system", "automations")
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
        for key, parse in (("archive", parse_archive), ("audience", parse_filter),
                           ("subjects", parse_subjects)):
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


    # -- Markdown: links, images, stray HTML ------------------------------------------------



    # -- pictures in emails/images/ ---------------------------------------------------------


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
