"""The drip sequence as data: one Markdown file per step in ``emails/sequence/``.

Files are ordered by name; a step is identified by the ``slug`` in its front matter,
so renaming a file to reorder it never re-sends anything.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

_DELAY = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)?\s*$",
    re.IGNORECASE,
)
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_WINDOW = re.compile(r"^\s*(\d{1,2})(?::00)?\s*-\s*(\d{1,2})(?::00)?\s*$")


class EmailFileError(ValueError):
    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


def parse_delay(value: Any) -> timedelta:
    """``0``, ``2 days``, ``36 hours``, ``1 week`` → timedelta."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(days=value)
    m = _DELAY.match(str(value))
    if not m:
        raise ValueError(f"cannot read delay {value!r} (write e.g. '0', '2 days', '12 hours')")
    n = float(m["n"])
    unit = (m["unit"] or "d").lower()
    return timedelta(**{_UNIT[unit[0]]: n})


def parse_window(value: Any) -> tuple[int, int] | None:
    """``any`` → no window; ``8-20`` → (8, 20) local hours."""
    if value is None:
        return None
    if str(value).strip().lower() in {"any", "anytime", "immediate", "none"}:
        return (0, 24)
    m = _WINDOW.match(str(value))
    if not m or not (0 <= int(m[1]) < int(m[2]) <= 24):
        raise ValueError(f"cannot read window {value!r} (write e.g. '8-20' or 'any')")
    return (int(m[1]), int(m[2]))


@dataclass(frozen=True)
class EmailSource:
    """One Markdown email with its front matter, as the marketer wrote it."""

    path: Path
    meta: dict[str, Any]
    body: str
    body_line: int  # line number of the body's first line in the file
    meta_lines: dict[str, int] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return str(self.meta.get("slug", ""))

    @property
    def subject(self) -> str:
        return str(self.meta.get("subject", ""))

    @property
    def preheader(self) -> str:
        return str(self.meta.get("preheader", ""))


@dataclass(frozen=True)
class Step:
    slug: str
    delay: timedelta
    window: tuple[int, int] | None  # None: the configured default window
    source: EmailSource

    @property
    def subject(self) -> str:
        return self.source.subject


def read_email_file(path: Path) -> EmailSource:
    return parse_email_text(path, path.read_text(encoding="utf-8"))


def parse_email_text(path: Path, text: str) -> EmailSource:
    """An email from its text (``path`` names it in errors), e.g. a stored copy."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise EmailFileError(path, 1, "front matter missing: the file must start with '---'")
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        raise EmailFileError(path, 1, "front matter not closed with '---'")
    try:
        meta = yaml.safe_load("".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EmailFileError(path, (mark.line + 2) if mark else 1, f"front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise EmailFileError(path, 2, "front matter must be 'key: value' lines")
    meta_lines = {}
    for i in range(1, end):
        key = lines[i].split(":", 1)[0].strip()
        if key and key not in meta_lines:
            meta_lines[key] = i + 1
    return EmailSource(path, meta, "".join(lines[end + 1 :]), end + 2, meta_lines)


def step_from_source(src: EmailSource) -> Step:
    for key in ("slug", "subject", "delay"):
        if key not in src.meta or src.meta[key] in (None, ""):
            raise EmailFileError(src.path, 1, f"front matter needs '{key}'")
    try:
        delay = parse_delay(src.meta["delay"])
    except ValueError as exc:
        raise EmailFileError(src.path, src.meta_lines.get("delay", 1), str(exc)) from exc
    try:
        window = parse_window(src.meta.get("window"))
    except ValueError as exc:
        raise EmailFileError(src.path, src.meta_lines.get("window", 1), str(exc)) from exc
    return Step(slug=src.slug, delay=delay, window=window, source=src)


@dataclass(frozen=True)
class Sequence:
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for step in self.steps:
            if step.slug in seen:
                raise EmailFileError(step.source.path, 1, f"slug {step.slug!r} used twice")
            seen.add(step.slug)

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def get(self, slug: str) -> Step | None:
        return next((s for s in self.steps if s.slug == slug), None)

    def subjects(self) -> dict[str, str]:
        """Slug → subject, e.g. to name the emails in a data export."""
        return {s.slug: s.subject for s in self.steps}

    @property
    def fingerprint(self) -> str:
        """Changes whenever steps, their order or their timing change."""
        h = hashlib.sha256()
        for s in self.steps:
            h.update(f"{s.slug}|{s.delay.total_seconds()}|{s.window}\n".encode())
        return h.hexdigest()[:16]


PLAN = "plan"  # the free plan's sequence name (emails/sequences/plan/)


def plan_folder(emails_dir: str | Path) -> Path:
    """The plan's folder: ``sequences/plan/``, or ``sequence/`` as before issue 25."""
    moved = Path(emails_dir, "sequences", PLAN)
    return moved if moved.is_dir() else Path(emails_dir, "sequence")


def sequence_files(emails_dir: str | Path) -> list[Path]:
    """The plan's emails, in file-name order (other sequences: core.sequences)."""
    return sorted(plan_folder(emails_dir).glob("*.md"))


def load_sequence(emails_dir: str | Path) -> Sequence:
    return Sequence(tuple(step_from_source(read_email_file(p)) for p in sequence_files(emails_dir)))


class SequenceFiles:
    """``load_sequence``, read and parsed again only when a file in the folder is
    added, removed or saved: the worker asks on every pass, and parsing every
    step's front matter was most of a pass with nothing due."""

    def __init__(self, emails_dir: str | Path) -> None:
        self.emails_dir = emails_dir
        self._cached: tuple[tuple, Sequence] | None = None

    def __call__(self) -> Sequence:
        files = sequence_files(self.emails_dir)
        try:
            stamp = tuple((str(p), st.st_mtime_ns, st.st_size) for p in files
                          for st in (p.stat(),))
        except OSError:  # removed meanwhile: read everything as it is now
            return load_sequence(self.emails_dir)
        if self._cached is None or self._cached[0] != stamp:
            self._cached = (stamp, load_sequence(self.emails_dir))
        return self._cached[1]
