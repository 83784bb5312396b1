"""Saving from the editor: checked first, a draft when it has errors, a revision
every time, and never over a version the editor did not open.

``Studio.save_email_source`` is the one way a front (the admin's editor, the
newsletter composer, a restore) writes an email file.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from funnel.config import Settings
from funnel.core.states import RevisionKind
from funnel.models import EmailRevision
from funnel.studio import images
from funnel.studio.checking import CheckContext, Checked, check_text
from funnel.studio.files import (
    EmailFile,
    StudioError,
    content_hash,
    locked,
    resolve,
    write_atomically,
)

MAX_SOURCE_BYTES = 1024 * 1024
SAVED, DRAFT, CONFLICT, UNCHANGED = "saved", "draft", "conflict", "unchanged"


@dataclass(frozen=True)
class SaveResult:
    """What a save did. ``conflict``: nothing was written, ``disk_text`` is the
    version someone else saved since the editor opened the file (the draft beside it
    when ``on_draft``). ``disk_hash`` and ``draft_hash`` are what the next save from
    the page now shown goes over."""

    outcome: str
    file: EmailFile
    checked: Checked | None = None
    revision_id: int | None = None
    disk_text: str | None = None
    disk_hash: str = ""
    draft_hash: str = ""
    on_draft: bool = False

    @property
    def message(self) -> str:
        if self.outcome == CONFLICT and self.on_draft:
            return (f"Not saved: the check found errors, so this would be kept as a draft, "
                    f"but the draft of {self.file.rel} was changed since you opened it "
                    "(another tab saved one). Both versions are shown below; saving again "
                    "replaces that draft with yours.")
        return {
            SAVED: f"Saved: {self.file.rel} is live.",
            DRAFT: (f"Kept as a draft: the check found errors, so the live {self.file.rel} "
                    "is unchanged. Fix the errors below and save again."),
            CONFLICT: (f"Not saved: {self.file.rel} was changed since you opened it. Both "
                       "versions are shown below; saving again replaces the version on "
                       "disk with yours."),
            UNCHANGED: "Nothing to save: the text is the live version.",
        }[self.outcome]


@dataclass(frozen=True)
class Revision:
    """One save as the page and ``emails history`` list it."""

    id: int
    kind: str
    author: str
    at: datetime
    after: str
    diff: list[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    restored_from: int | None = None

    def summary(self) -> str:
        what = (f"restored #{self.restored_from}" if self.kind == RevisionKind.RESTORED
                else str(self.kind))
        return (f"#{self.id}  {self.at:%Y-%m-%d %H:%M} UTC  {self.author}  {what}  "
                f"+{self.added} -{self.removed}")


def clean_source(source: object) -> str:
    """The editor's text as a file holds it, or a refusal that changes nothing."""
    if not isinstance(source, str):
        raise StudioError("The email's text is missing. Nothing was saved.")
    size = len(source.encode("utf-8"))
    if size > MAX_SOURCE_BYTES:
        raise StudioError(f"The text is {size / 1024 / 1024:.1f} MB: an email file can be at "
                          f"most {MAX_SOURCE_BYTES // 1024 // 1024} MB. Nothing was saved.", 413)
    if "\x00" in source:
        raise StudioError("The text holds binary data (a NUL character). Nothing was saved.")
    # Browsers send a textarea's lines with CRLF; the files use LF.
    return source.replace("\r\n", "\n").replace("\r", "\n")


def diff_lines(before: str | None, after: str, name: str) -> list[str]:
    return list(difflib.unified_diff((before or "").splitlines(), after.splitlines(),
                                     f"{name} (before)", f"{name} (after)", lineterm=""))


class Studio:
    """The editor's use case over one emails folder and database."""

    def __init__(self, settings: Settings, session: Session,
                 clock: Callable[[], datetime],
                 route_exists: Callable[[str], bool] | None = None) -> None:
        """``session``: the caller's (a web request's own, so no second connection
        waits on its lock); the studio commits its revisions on it."""
        self.context = CheckContext(settings, clock, route_exists)
        self.session = session
        self.clock = clock

    @property
    def emails_dir(self) -> Path:
        return Path(self.context.settings.emails_dir)

    def file(self, slug_or_path: str, *, new: bool = False) -> EmailFile:
        return resolve(self.emails_dir, slug_or_path, new=new)

    def check(self, slug_or_path: str | EmailFile, source: object) -> Checked:
        """The check's messages and the preview for a text, nothing saved."""
        file = slug_or_path if isinstance(slug_or_path, EmailFile) else self.file(
            slug_or_path, new=True)
        return check_text(self.context, file, clean_source(source))

    def save_email_source(self, slug_or_path: str, source: object, author: str,
                          base_revision: str, *, draft_base: str = "",
                          restored_from: int | None = None) -> SaveResult:
        """Save ``source`` if the file on disk is still the version whose hash is
        ``base_revision`` ("" for a new file). With errors it becomes a draft, if the
        draft beside the file is still the one whose hash is ``draft_base`` ("" for
        none): a draft another tab saved meanwhile is never silently replaced."""
        text = clean_source(source)
        file = self.file(slug_or_path, new=True)
        draft_base = draft_base or ""
        with locked(self.emails_dir):
            disk = file.read()
            if content_hash(disk) != (base_revision or ""):
                return SaveResult(CONFLICT, file, disk_text=disk, disk_hash=content_hash(disk),
                                  draft_hash=draft_base)
            if text == disk:
                with contextlib.suppress(FileNotFoundError):
                    file.draft_path.unlink()
                return SaveResult(UNCHANGED, file, disk_hash=content_hash(disk))
            checked = check_text(self.context, file, text)
            kind = (RevisionKind.DRAFT if checked.has_errors else
                    RevisionKind.RESTORED if restored_from else RevisionKind.SAVED)
            if kind == RevisionKind.DRAFT:
                draft = file.read_draft()
                # A clean save replaces any draft (it is a revision, so restorable);
                # a draft over someone else's newer draft would hide their work.
                if content_hash(draft) != draft_base and draft != text:
                    return SaveResult(CONFLICT, file, checked, disk_text=draft,
                                      disk_hash=content_hash(disk),
                                      draft_hash=content_hash(draft), on_draft=True)
            s = self.session
            row = EmailRevision(path=file.rel, kind=str(kind), author=author,
                                at=self.clock(), before=disk, after=text,
                                restored_from=restored_from)
            s.add(row)
            s.flush()
            target = file.draft_path if kind == RevisionKind.DRAFT else file.path
            write_atomically(target, text)
            try:
                s.commit()
            except BaseException:
                s.rollback()
                if target == file.path and disk is not None:  # no revision: no change
                    write_atomically(file.path, disk)
                elif target == file.path:
                    file.path.unlink()
                raise
            revision_id = row.id
            if kind != RevisionKind.DRAFT:
                with contextlib.suppress(FileNotFoundError):
                    file.draft_path.unlink()
                file = resolve(self.emails_dir, file.rel)  # the slug may have changed
        return SaveResult(DRAFT if kind == RevisionKind.DRAFT else SAVED, file, checked,
                          revision_id, disk_hash=content_hash(file.read()),
                          draft_hash=content_hash(file.read_draft()))

    def history(self, slug_or_path: str | EmailFile, limit: int = 50) -> list[Revision]:
        """The saves of one file, newest first, each with its change."""
        file = slug_or_path if isinstance(slug_or_path, EmailFile) else self.file(slug_or_path)
        s = self.session
        rows = s.scalars(select(EmailRevision).where(EmailRevision.path == file.rel)
                         .order_by(EmailRevision.id.desc()).limit(limit)).all()
        out = []
        for r in rows:
            diff = diff_lines(r.before, r.after, file.rel)
            body = [line for line in diff[2:] if not line.startswith("@@")]
            out.append(Revision(r.id, r.kind, r.author, r.at, r.after, diff,
                                sum(line.startswith("+") for line in body),
                                sum(line.startswith("-") for line in body),
                                r.restored_from))
        return out

    def restore(self, slug_or_path: str, revision_id: int, author: str,
                base_revision: str, draft_base: str = "") -> SaveResult:
        """Put an earlier revision's text back (checked, and a revision itself)."""
        file = self.file(slug_or_path)
        s = self.session
        row = s.get(EmailRevision, revision_id)
        if row is None or row.path != file.rel:
            raise StudioError(f"{file.rel} has no revision #{revision_id}", 404)
        text = row.after
        return self.save_email_source(file.rel, text, author, base_revision,
                                      draft_base=draft_base, restored_from=revision_id)

    def save_picture(self, filename: str, data: bytes, alt: str) -> images.SavedPicture:
        return images.save_picture(self.emails_dir / "images", filename, data, alt)
