"""Check and preview a text before it is saved: the same check as ``emails check``,
run on the text in the editor, and the email as the sample reader would get it.

The text is put in a throwaway copy of the emails folder (links to every other file,
the edited one written out), so the check, the layout and the pictures see exactly
what they would see after saving, and the live folder is never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import TemplateError

from funnel.config import Settings
from funnel.core.sequence import (
    EmailFileError,
    EmailSource,
    parse_email_text,
    read_email_file,
    sequence_files,
)
from funnel.mail import check as emailcheck
from funnel.mail.check_support import find_source
from funnel.mail.compose import Composer
from funnel.newsletter.scheduling import REASON
from funnel.studio.files import DRAFT_SUFFIX, LOCK_NAME, EmailFile


@dataclass(frozen=True)
class Note:
    """One message of the check, as the editor lists it."""

    line: int
    level: str
    message: str
    where: str  # "sequence/01-stretch.md:3"

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.message}"


@dataclass(frozen=True)
class Checked:
    """The check's messages for a text and, if it renders, the email it makes."""

    notes: list[Note]
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    render_error: str = ""

    @property
    def has_errors(self) -> bool:
        return any(n.level == emailcheck.ERROR for n in self.notes)

    def as_json(self) -> dict:
        return {"notes": [dataclasses.asdict(n) | {"display": str(n)} for n in self.notes],
                "errors": self.has_errors, "subject": self.subject,
                "preheader": self.preheader, "html": self.html, "text": self.text,
                "render_error": self.render_error}


@dataclass(frozen=True)
class CheckContext:
    """What a check needs from the app: its settings, clock and site paths."""

    settings: Settings
    clock: Callable[[], datetime]
    route_exists: Callable[[str], bool] | None = None


@contextlib.contextmanager
def overlay(file: EmailFile, text: str) -> Iterator[tuple[Path, Path]]:
    """A temporary emails folder in which ``file`` holds ``text``; everything else
    is a link to the live file."""
    with tempfile.TemporaryDirectory(prefix="funnel-studio-") as tmp:
        root = Path(tmp)
        # Real folders along the edited file's path (sequences/plan/ is two deep), links
        # to everything beside them: writing the edit never reaches a live file.
        parts = file.rel.split("/")
        real, copy = file.root, root
        for depth, name in enumerate(parts):
            last = depth == len(parts) - 1
            for entry in real.iterdir() if real.is_dir() else ():
                if entry.name in (name, LOCK_NAME) or entry.name.endswith(DRAFT_SUFFIX):
                    continue
                (copy / entry.name).symlink_to(entry)
            if not last:
                real, copy = real / name, copy / name
                copy.mkdir()
        edited = root / file.rel
        edited.write_text(text, encoding="utf-8")
        yield root, edited


def check_text(ctx: CheckContext, file: EmailFile, text: str) -> Checked:
    """The check's messages for ``text`` as ``file``, and the preview it renders."""
    with overlay(file, text) as (root, edited):
        settings = dataclasses.replace(ctx.settings, emails_dir=str(root))
        composer = Composer(settings, ctx.clock)
        sample = emailcheck.sample_subscriber()
        checker = emailcheck.Checker(root, composer.variables(sample, "preview"),
                                     base_url=ctx.settings.base_url,
                                     route_exists=ctx.route_exists)
        if file.is_email:
            src = checker.check_file(edited, system=file.folder == "system",
                                     broadcast=file.folder == "broadcasts")
            if src is not None and src.slug:
                other = find_source(file.root, src.slug)
                if other is not None and other.path != file.path:
                    checker.error(edited, src.meta_lines.get("slug", 1),
                                  f"slug '{src.slug}' is already used by {other.path.name}")
        elif file.folder == "layout":
            checker.check_layout()
        else:
            checker.check_next_step()
        notes = [Note(p.line, p.level, p.message, f"{file.rel}:{p.line}")
                 for p in sorted(set(checker.problems)) if p.path == edited]
        return _preview(composer, file, edited, text, root, notes)


def _preview(composer: Composer, file: EmailFile, edited: Path, text: str, root: Path,
             notes: list[Note]) -> Checked:
    try:
        src = _sample_source(file, edited, text, root)
    except EmailFileError as exc:
        return Checked(notes, render_error=f"line {exc.line}: {exc.message}")
    if src is None:
        return Checked(notes, render_error="there is no plan email to show it in")
    extra = {"reason": REASON} if src.path.parent.name == "broadcasts" else None
    try:
        rendered = composer.render(src, emailcheck.sample_subscriber(), "preview", extra=extra)
    except TemplateError as exc:
        return Checked(notes, render_error=f"does not render: {exc}")
    return Checked(notes, rendered.subject, rendered.preheader,
                   rendered.html.replace("<head>", '<head><base target="_blank">', 1),
                   rendered.text)


def _sample_source(file: EmailFile, edited: Path, text: str, root: Path) -> EmailSource | None:
    """The email that shows the edit: itself, or for the layout the first plan email,
    for the end-of-plan piece the plan email that includes it."""
    if file.is_email:
        return parse_email_text(edited, text)
    steps = sequence_files(root)
    if file.folder == "layout":
        return read_email_file(steps[0]) if steps else None
    for path in steps:
        src = read_email_file(path)
        if "next_step" in src.body:
            return src
    return read_email_file(steps[-1]) if steps else None
