"""Broadcasts as data: one Markdown file per issue in ``emails/broadcasts/``.

Pure: no database, no Flask. The file format is the plan's (front matter, body,
layout) with three keys of its own: ``archive`` (shown at /newsletter or not),
``audience`` (a small filter, see ``Filter``) and no ``delay``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from funnel.core.sequence import EmailFileError, EmailSource, read_email_file
from funnel.core.tags import normal_tag

BROADCAST_KEYS = {"slug": True, "subject": True, "preheader": False, "archive": False,
                  "audience": False, "subjects": False}
MIN_SUBJECTS, MAX_SUBJECTS = 2, 4  # a subject test compares 2 to 4 subjects
PLAN_FINISHED = "finished"
PLAN_IN_PLAN = "in-plan"
PLAN_CHOICES = (PLAN_FINISHED, PLAN_IN_PLAN)
# The other topic a newsletter reader may have: the plan's emails too, or not.
WANTS_PLAN_CHOICES = ("yes", "no")
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}
_HHMM = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


@dataclass(frozen=True)
class Filter:
    """Who among the confirmed newsletter readers gets a broadcast.

    Every field left empty means "anyone"; the fields that are set must all hold.
    """

    plan: str | None = None                # "finished" or "in-plan"
    signed_up_before: date | None = None   # sign-up day strictly before (UTC)
    signed_up_after: date | None = None    # sign-up day on or after (UTC)
    source: str | None = None              # utm_source, or the referring site
    campaign: str | None = None            # utm_campaign
    tag: str | None = None                 # has this tag
    without_tag: str | None = None         # has not got this tag
    wants_plan: str | None = None          # "yes": also gets the plan; "no": turned it off

    def as_dict(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not None}

    def describe(self) -> str:
        parts = [_WANTS_PLAN_WORDS[v] if k == "wants_plan" else f"{k.replace('_', ' ')} {v}"
                 for k, v in self.as_dict().items()]
        return ", ".join(parts) if parts else "everyone who wants the newsletter"

    def merged(self, other: Filter) -> Filter:
        """``other``'s settings win (the command line over the front matter)."""
        values = {f.name: getattr(other, f.name) if getattr(other, f.name) is not None
                  else getattr(self, f.name) for f in fields(self)}
        return Filter(**values)


FILTER_KEYS = tuple(f.name for f in fields(Filter))
_WANTS_PLAN_WORDS = {"yes": "also receives the plan", "no": "turned the plan off"}


def parse_filter(raw: Any) -> Filter:
    """A ``Filter`` from front matter (a mapping) or ``key=value`` pairs; ValueError if bad."""
    if raw in (None, "", {}):
        return Filter()
    if not isinstance(raw, Mapping):
        # A marketer's typo, reported like every other bad value (not a programming error).
        raise ValueError("audience must be 'key: value' lines, e.g. 'plan: finished'")  # noqa: TRY004
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).strip().replace("-", "_")
        if name not in FILTER_KEYS:
            raise ValueError(f"unknown audience filter '{key}' (known: {', '.join(FILTER_KEYS)})")
        text = str(value).strip() if value is not None else ""
        if not text:
            raise ValueError(f"audience filter '{key}' needs a value")
        if name == "plan":
            if text not in PLAN_CHOICES:
                raise ValueError(f"plan must be {' or '.join(PLAN_CHOICES)}, not '{text}'")
            values[name] = text
        elif name in ("signed_up_before", "signed_up_after"):
            if isinstance(value, datetime):
                values[name] = value.date()
            elif isinstance(value, date):
                values[name] = value
            else:
                try:
                    values[name] = date.fromisoformat(text)
                except ValueError as exc:
                    raise ValueError(f"{key} must be a date like 2026-11-30, not '{text}'") from exc
        elif name == "wants_plan":
            # YAML reads a bare yes/no as true/false; the command line gives text.
            word = text.lower()
            if word not in _TRUE | _FALSE:
                raise ValueError(f"wants_plan must be yes (also receives the plan) or no "
                                 f"(turned the plan off), not '{text}'")
            values[name] = "yes" if word in _TRUE else "no"
        elif name in ("tag", "without_tag"):
            values[name] = normal_tag(text)
        else:
            if len(text) > 100:
                raise ValueError(f"{key} is longer than 100 characters")
            values[name] = text
    return Filter(**values)


def parse_where(pairs: Iterable[str]) -> Filter:
    """``["plan=finished", "source=instagram"]`` from the command line."""
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"'{pair}' is not KEY=VALUE (e.g. plan=finished)")
        raw[key.strip()] = value
    return parse_filter(raw)


def parse_subjects(value: Any) -> tuple[str, ...]:
    """The ``subjects:`` list of a subject test: 2 to 4 different, non-empty lines."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError("subjects must be a list, one '- subject' line each")
    subjects = tuple(str(v).strip() for v in value)
    if any(not s or "\n" in s for s in subjects):
        raise ValueError("each of the subjects must be one non-empty line")
    if len(subjects) < MIN_SUBJECTS:
        raise ValueError(f"a subject test needs at least {MIN_SUBJECTS} subjects, this has "
                         f"{len(subjects)}: add one, or remove 'subjects:' to send one subject")
    if len(subjects) > MAX_SUBJECTS:
        raise ValueError(f"a subject test compares at most {MAX_SUBJECTS} subjects, this has "
                         f"{len(subjects)}: keep the {MAX_SUBJECTS} you like best")
    if len({s.casefold() for s in subjects}) != len(subjects):
        raise ValueError("two of the subjects are the same: each must differ")
    return subjects


def parse_archive(value: Any) -> bool:
    if value is None or value is True or value is False:
        return value is not False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"archive must be yes or no, not '{value}'")


def parse_local_time(value: str) -> time:
    """``09:00`` → 09:00; anything else is refused with the format to use."""
    m = _HHMM.match(value or "")
    if not m:
        raise ValueError(f"'{value}' is not a time of day: write HH:MM, e.g. 09:00")
    return time(int(m[1]), int(m[2]))


def parse_at(value: str, now: datetime) -> datetime:
    """An ISO date-time (UTC unless it says otherwise), refused if already past."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a date and time: write e.g. 2026-12-01T09:00 "
                         "(UTC) or 2026-12-01T09:00+01:00") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    if at < now - timedelta(minutes=1):
        raise ValueError(f"{at:%Y-%m-%d %H:%M} UTC is in the past (it is now "
                         f"{now:%Y-%m-%d %H:%M} UTC): give a later time, or leave out "
                         "--at to send now")
    return at


def local_due(start: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first moment at or after ``start`` when the clock in ``tz`` shows ``at``.

    So ``--local 09:00`` reaches everyone within a day of ``start``: those whose
    09:00 has already passed today get it at 09:00 tomorrow. On a day when
    daylight saving skips that hour, the wall-clock time is read as fold 0
    (zoneinfo's rule), which lands an hour later. A ``fold=1`` time is read as
    fold 0 as well: in a skipped hour fold 1 means the clock *before* the jump,
    which lands an hour earlier, at a time the reader's clock never showed.
    """
    at = at.replace(fold=0)
    local = start.astimezone(tz)
    for days in range(3):
        day = local.date() + timedelta(days=days)
        candidate = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if candidate >= start:
            return candidate
    raise AssertionError("unreachable: a wall-clock time recurs within two days")


@dataclass(frozen=True)
class Broadcast:
    """A broadcast file, read and validated."""

    source: EmailSource
    archive: bool
    audience: Filter
    subjects: tuple[str, ...] = ()  # a subject test's variants (empty: no test)

    @property
    def slug(self) -> str:
        return self.source.slug

    @property
    def subject(self) -> str:
        return self.source.subject


def broadcast_from_source(src: EmailSource) -> Broadcast:
    for key in ("slug", "subject"):
        if src.meta.get(key) in (None, ""):
            raise EmailFileError(src.path, 1, f"front matter needs '{key}'")
    try:
        archive = parse_archive(src.meta.get("archive"))
    except ValueError as exc:
        raise EmailFileError(src.path, src.meta_lines.get("archive", 1), str(exc)) from exc
    try:
        audience = parse_filter(src.meta.get("audience"))
    except ValueError as exc:
        raise EmailFileError(src.path, src.meta_lines.get("audience", 1), str(exc)) from exc
    try:
        subjects = parse_subjects(src.meta.get("subjects"))
    except ValueError as exc:
        raise EmailFileError(src.path, src.meta_lines.get("subjects", 1), str(exc)) from exc
    return Broadcast(source=src, archive=archive, audience=audience, subjects=subjects)


def broadcast_files(emails_dir: str | Path) -> list[Path]:
    return sorted(Path(emails_dir, "broadcasts").glob("*.md"))


def read_broadcast(emails_dir: str | Path, slug: str) -> Broadcast | None:
    """The broadcast whose file is ``SLUG.md`` (or whose front matter says the slug)."""
    misnamed: EmailFileError | None = None
    for path in broadcast_files(emails_dir):
        try:
            src = read_email_file(path)
        except (EmailFileError, UnicodeDecodeError):
            if path.stem == slug:
                raise
            continue
        if src.slug == slug:
            return broadcast_from_source(src)
        if path.stem == slug:
            # SLUG.md is there; what its front matter says is what is wrong.
            named = src.slug
            misnamed = EmailFileError(
                path, src.meta_lines.get("slug", 1),
                f"front matter says slug '{named}': send it by that name, or make it "
                f"'slug: {slug}'" if named else f"front matter needs 'slug: {slug}'")
    if misnamed is not None:
        raise misnamed
    return None


def source_text(src: EmailSource) -> str:
    """The whole file as it was read, to freeze a copy when scheduling."""
    return src.path.read_text(encoding="utf-8")


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
