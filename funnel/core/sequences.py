"""Several sequences (issue 25): ``emails/sequences/<name>/NN-slug.md`` plus
``_sequence.yml`` (title, topic, when it starts and what stops it).

Slugs are unique across all sequences (and broadcasts): a delivery row is keyed
by (subscriber, kind, slug), so each step goes once per subscriber per sequence
and a slug always says which sequence it came from.

A sequence whose files do not parse is *broken*, not removed: the worker leaves
the people in it where they are until it is fixed (``Sequences.broken``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from funnel.core.sequence import (
    PLAN,
    EmailFileError,
    EmailSource,
    Sequence,
    Step,
    plan_folder,
    read_email_file,
    step_from_source,
)
from funnel.core.tags import normal_tag

CONFIG = "_sequence.yml"
START_KINDS = ("confirmed", "tag", "finished", "source")
TOPICS = ("plan", "newsletter")  # the preference page's topics a sequence belongs to
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Start:
    kind: str                 # one of START_KINDS
    value: str | None = None  # the tag, sequence or source (None for "confirmed")

    def describe(self) -> str:
        return self.kind if self.value is None else f"{self.kind}: {self.value}"


@dataclass(frozen=True)
class Stop:
    tag: str | None = None       # stop when the subscriber has this tag
    sequence: str | None = None  # stop when they start this other sequence

    def describe(self) -> str:
        return f"tag: {self.tag}" if self.tag else f"sequence: {self.sequence} starts"


@dataclass(frozen=True)
class SequenceDef:
    name: str
    title: str
    topic: str
    start: Start
    stops: tuple[Stop, ...]
    steps: Sequence
    folder: Path


@dataclass(frozen=True)
class Sequences:
    defs: tuple[SequenceDef, ...]
    broken: dict[str, str] = field(default_factory=dict)  # name -> the first error

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for d in self.defs:
            for step in d.steps:
                if step.slug in seen:
                    raise EmailFileError(step.source.path, 1, f"slug {step.slug!r} is used in "
                                         f"sequences {seen[step.slug]!r} and {d.name!r}")
                seen[step.slug] = d.name
        object.__setattr__(self, "_of_slug", seen)
        object.__setattr__(self, "_by_name", {d.name: d for d in self.defs})
        object.__setattr__(self, "all", Sequence(tuple(s for d in self.defs for s in d.steps)))

    all: Sequence = field(init=False)  # every step of every sequence, for look-ups by slug

    def get(self, name: str) -> SequenceDef | None:
        return self._by_name.get(name)  # type: ignore[attr-defined]

    def of_slug(self, slug: str) -> str | None:
        """The sequence a step belongs to (None: no longer in any)."""
        return self._of_slug.get(slug)  # type: ignore[attr-defined]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.defs)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a sequence, its steps, timing or triggers change."""
        h = hashlib.sha256()
        for d in self.defs:
            h.update(f"{d.name}|{d.topic}|{d.start}|{d.stops}|{d.steps.fingerprint}\n".encode())
        h.update(repr(sorted(self.broken)).encode())
        return h.hexdigest()[:16]


def sequence_folders(emails_dir: str | Path) -> list[Path]:
    """Each sequence's folder: the plan first, then the others by name."""
    root = Path(emails_dir, "sequences")
    plan = plan_folder(emails_dir)
    others = sorted(p for p in root.glob("*") if p.is_dir() and p.name != PLAN) \
        if root.is_dir() else []
    return ([plan] if plan.is_dir() else []) + others


def _name_of(folder: Path) -> str:
    return PLAN if folder.name == "sequence" else folder.name


def parse_config(path: Path, raw: Any, name: str) -> tuple[str, str, Start, tuple[Stop, ...]]:
    """``_sequence.yml``'s values, or EmailFileError naming the problem."""
    if raw is None and name == PLAN:
        raw = {}
    if not isinstance(raw, dict):
        raise EmailFileError(path, 1, "must be 'key: value' lines (title, topic, start, stop)")
    unknown = set(raw) - {"title", "topic", "start", "stop"}
    if unknown:
        raise EmailFileError(path, 1, f"unknown key '{sorted(unknown)[0]}' (known: title, "
                             "topic, start, stop)")
    title = str(raw.get("title") or ("The free plan" if name == PLAN else name))
    topic = str(raw.get("topic") or "plan")
    if topic not in TOPICS:
        raise EmailFileError(path, 1, f"topic must be one of {', '.join(TOPICS)}, not '{topic}'")
    start = _start(path, raw.get("start", "confirmed" if name == PLAN else None))
    stops = tuple(_stop(path, s) for s in _as_list(raw.get("stop")))
    if start.kind == "finished" and start.value == name:
        raise EmailFileError(path, 1, "a sequence cannot start when it itself finishes")
    return title, topic, start, stops


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _start(path: Path, raw: Any) -> Start:
    if raw == "confirmed":
        return Start("confirmed")
    if not isinstance(raw, dict) or len(raw) != 1:
        raise EmailFileError(path, 1, "start must be 'confirmed', or one of 'tag: X', "
                             "'finished: <sequence>', 'source: <form source>'")
    kind, value = next(iter(raw.items()))
    if kind not in START_KINDS or kind == "confirmed":
        raise EmailFileError(path, 1, f"unknown start '{kind}' (use confirmed, tag, finished "
                             "or source)")
    text = str(value or "").strip()
    if not text:
        raise EmailFileError(path, 1, f"start '{kind}' needs a value")
    try:
        if kind == "tag":
            text = normal_tag(text)
        elif kind == "finished" and not _NAME.match(text):
            raise ValueError(f"'{text}' is not a sequence name")
    except ValueError as exc:
        raise EmailFileError(path, 1, f"start: {exc}") from exc
    return Start(kind, text.lower() if kind == "source" else text)


def _stop(path: Path, raw: Any) -> Stop:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise EmailFileError(path, 1, "each stop is 'tag: X' or 'sequence: <name>'")
    kind, value = next(iter(raw.items()))
    text = str(value or "").strip()
    try:
        if kind == "tag":
            return Stop(tag=normal_tag(text))
        if kind == "sequence" and _NAME.match(text):
            return Stop(sequence=text)
    except ValueError as exc:
        raise EmailFileError(path, 1, f"stop: {exc}") from exc
    raise EmailFileError(path, 1, f"stop '{kind}: {text}' is not 'tag: X' or 'sequence: <name>'")


def load_one(folder: Path) -> SequenceDef:
    name = _name_of(folder)
    if not _NAME.match(name):
        raise EmailFileError(folder, 1, f"sequence folder '{name}' must be lowercase letters, "
                             "digits and hyphens")
    config = folder / CONFIG
    if config.exists():
        try:
            raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise EmailFileError(config, (mark.line + 1) if mark else 1, str(exc)) from exc
    elif name == PLAN:
        raw = None  # the plan before issue 25 had no config: it starts on confirming
    else:
        raise EmailFileError(config, 1, "missing: every sequence needs _sequence.yml "
                             "(title, topic, start)")
    title, topic, start, stops = parse_config(config, raw, name)
    steps = Sequence(tuple(step_from_source(read_email_file(p))
                           for p in sorted(folder.glob("*.md"))))
    return SequenceDef(name, title, topic, start, stops, steps, folder)


SEND_PREFIX = "send-"  # a rule's ``send: slug`` is a one-email sequence "send-<slug>"


def send_emails(emails_dir: str | Path) -> list[Path]:
    """The emails rules ``send`` (emails/automations/*.md)."""
    return sorted(Path(emails_dir, "automations").glob("*.md"))


def load_sequences(emails_dir: str | Path) -> Sequences:
    """Every sequence that parses; the others in ``broken`` with their first error.
    Slugs shared between sequences are an error for the whole set (EmailFileError).

    Each email of ``emails/automations/`` is a sequence of its own with one step,
    started only by a rule's ``send``: so it goes once per person, inside their
    window, with the one-email-a-day rule, like any other step."""
    defs: list[SequenceDef] = []
    broken: dict[str, str] = {}
    for folder in sequence_folders(emails_dir):
        try:
            defs.append(load_one(folder))
        except (EmailFileError, OSError) as exc:
            broken[_name_of(folder)] = str(exc)
    for path in send_emails(emails_dir):
        try:
            src = read_email_file(path)
            if "delay" not in src.meta:
                src = EmailSource(src.path, {**src.meta, "delay": 0}, src.body, src.body_line,
                                  src.meta_lines)
            step = step_from_source(src)
        except (EmailFileError, OSError) as exc:
            broken[SEND_PREFIX + path.stem] = str(exc)
            continue
        defs.append(SequenceDef(SEND_PREFIX + step.slug, step.subject, "plan",
                                Start("rule"), (), Sequence((step,)), path.parent))
    return Sequences(tuple(defs), broken)


def stamp(emails_dir: str | Path) -> tuple:
    """What changes when any sequence file is added, removed or saved."""
    files = [p for folder in sequence_folders(emails_dir)
             for p in sorted(folder.glob("*")) if p.suffix in (".md", ".yml")]
    files += send_emails(emails_dir)
    return tuple((str(p), st.st_mtime_ns, st.st_size) for p in files for st in (p.stat(),))


class SequencesFiles:
    """``load_sequences``, parsed again only when a file changes (the worker asks
    every pass)."""

    def __init__(self, emails_dir: str | Path) -> None:
        self.emails_dir = emails_dir
        self._cached: tuple[tuple, Sequences] | None = None

    def __call__(self) -> Sequences:
        try:
            now = stamp(self.emails_dir)
        except OSError:
            return load_sequences(self.emails_dir)
        if self._cached is None or self._cached[0] != now:
            self._cached = (now, load_sequences(self.emails_dir))
        return self._cached[1]


def step_of(sequences: Sequences, slug: str) -> Step | None:
    return sequences.all.get(slug)


def all_steps(emails_dir: str | Path) -> Sequence:
    """Every step of every sequence (for look-ups by slug: view in browser, data
    export); the plan alone if the set cannot be read."""
    from funnel.core.sequence import load_sequence

    try:
        return load_sequences(emails_dir).all
    except EmailFileError:
        return load_sequence(emails_dir)
