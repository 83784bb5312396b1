"""A new newsletter written in the browser, saved as ``emails/broadcasts/SLUG.md``.

The file stays the one source of truth (reviewable, in git, read by ``emails
check``): this module only writes it. The draft is checked with the same checker
as ``emails check`` before anything touches the folder, then saved through the
studio (``funnel.studio.service``): a revision like every editor save, written
atomically under the folder's lock, and never over an existing file.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from funnel.core.broadcast import parse_subjects, read_broadcast
from funnel.mail.check import ERROR, Checker, Problem

MAX_BODY = 1_000_000  # one megabyte of Markdown is a book, not a newsletter
MAX_SUBJECT = 200
MAX_SLUG = 80
RESERVED = frozenset({"new"})  # /admin/broadcasts/new is the page that writes one
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class RevisionStore(Protocol):
    """``funnel.studio.service.Studio``, which the web front passes in (the studio
    imports this package, so this package must not import it back)."""

    @property
    def emails_dir(self) -> Path: ...

    def save_email_source(self, slug_or_path: str, source: object, author: str,
                          base_revision: str) -> Any: ...


# The studio's save outcomes (funnel.studio.service) this module acts on.
SAVED, CONFLICT = "saved", "conflict"


class DraftError(ValueError):
    """Refused; the message says why and what to do instead."""


@dataclass(frozen=True)
class Draft:
    slug: str
    subject: str
    preheader: str
    body: str
    subjects: tuple[str, ...] = ()  # 2 to 4 for a subject test, else empty

    def text(self) -> str:
        """The whole file: YAML front matter (dumped, so no quote or colon breaks it)."""
        meta: dict[str, Any] = {"slug": self.slug, "subject": self.subject}
        if self.preheader:
            meta["preheader"] = self.preheader
        if self.subjects:
            meta["subjects"] = list(self.subjects)
        meta["archive"] = "yes"
        front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000)
        body = self.body.replace("\r\n", "\n")
        return f"---\n{front}---\n{body.rstrip()}\n"


def propose_slug(subject: str) -> str:
    """``"Run Stronger #2: hills!"`` → ``run-stronger-2-hills``: ASCII letters, digits, hyphens."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:MAX_SLUG].rstrip("-") or "newsletter"


def check_slug(slug: str) -> str:
    slug = slug.strip()
    if not slug:
        raise DraftError("the slug is empty: it names the file, e.g. hill-repeats")
    if "/" in slug or "\\" in slug or ".." in slug:
        raise DraftError(f"'{slug}' is not a slug: a slug names one file in "
                         "the newsletters' folder (broadcasts/), no folders and no '..'")
    if slug in RESERVED:
        raise DraftError(f"'{slug}' is a word the admin pages use: choose another slug")
    if len(slug) > MAX_SLUG or not _SLUG.match(slug):
        raise DraftError(f"'{slug}' is not a slug: use lowercase letters, digits and hyphens "
                         f"(at most {MAX_SLUG}), e.g. hill-repeats")
    return slug


def draft_from_form(form: Mapping[str, str]) -> Draft:
    """The form's fields, checked one by one; raises DraftError with the first problem."""
    subject = (form.get("subject") or "").strip()
    preheader = (form.get("preheader") or "").strip()
    body = form.get("body") or ""
    if len(body.encode()) > MAX_BODY:
        raise DraftError(f"the text is {len(body.encode()):,} bytes: the limit is "
                         f"{MAX_BODY:,} (one megabyte). Nothing was saved.")
    if "\x00" in body:
        raise DraftError("the text holds a NUL character: paste it as plain text")
    if not subject or "\n" in subject or "\r" in subject:
        raise DraftError("the subject is empty: every newsletter needs one line of subject")
    if len(subject) > MAX_SUBJECT or len(preheader) > MAX_SUBJECT:
        raise DraftError(f"the subject and the preheader are each at most {MAX_SUBJECT} "
                         "characters")
    if "\n" in preheader or "\r" in preheader:
        raise DraftError("the preheader is one line")
    if not body.strip():
        raise DraftError("the text is empty: write the newsletter in the big field")
    slug = check_slug(form.get("slug") or propose_slug(subject))
    others = [s.strip() for s in (form.get("other_subjects") or "").splitlines() if s.strip()]
    subjects: tuple[str, ...] = ()
    if others:
        try:
            subjects = parse_subjects([subject, *others])
        except ValueError as exc:
            raise DraftError(str(exc)) from exc
    return Draft(slug=slug, subject=subject, preheader=preheader, body=body, subjects=subjects)


def target(emails_dir: str | Path, slug: str) -> Path:
    folder = Path(emails_dir, "broadcasts").resolve()
    path = (folder / f"{check_slug(slug)}.md").resolve()
    if path.parent != folder:  # belt and braces: check_slug already refuses folders
        raise DraftError(f"'{slug}' would leave emails/broadcasts/")
    return path


def problems(draft: Draft, emails_dir: str | Path, variables: Mapping[str, Any], *,
             base_url: str, route_exists=None) -> list[Problem]:
    """What ``emails check`` would say about the draft, named as its final file."""
    final = Path(emails_dir, "broadcasts", f"{draft.slug}.md")
    with tempfile.TemporaryDirectory(prefix="funnel-draft-") as tmp:
        path = Path(tmp, "broadcasts", f"{draft.slug}.md")
        path.parent.mkdir()
        path.write_text(draft.text(), encoding="utf-8")
        checker = Checker(emails_dir, variables, base_url=base_url, route_exists=route_exists)
        checker.check_file(path, system=False, broadcast=True)
    return [Problem(final, p.line, p.level, p.message) for p in checker.problems]


def save_new(draft: Draft, studio: RevisionStore, found: list[Problem], author: str) -> Path:
    """Write the draft as a new file through the studio (so the save is a revision,
    written atomically under the folder's lock); refuses errors and an existing slug."""
    errors = [p for p in found if p.level == ERROR]
    if errors:
        raise DraftError("not saved, the check found errors: "
                         + "; ".join(f"line {p.line}: {p.message}" for p in errors))
    path = target(studio.emails_dir, draft.slug)
    if path.exists() or read_broadcast(studio.emails_dir, draft.slug) is not None:
        raise DraftError(f"a newsletter '{draft.slug}' exists already: choose another slug "
                         "(each issue is sent once, under its own slug)")
    # An empty base revision means "only if the file does not exist yet": a second tab
    # saving the same new slug a moment later gets a conflict, never an overwrite.
    result = studio.save_email_source(f"broadcasts/{draft.slug}.md", draft.text(), author, "")
    if result.outcome == CONFLICT:
        raise DraftError(f"a newsletter '{draft.slug}' was just saved by someone else: "
                         "choose another slug")
    if result.outcome != SAVED:
        raise DraftError(result.message)
    return result.file.path
