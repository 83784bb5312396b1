"""Which files the editor may touch, by slug or path, and how they are written.

Only the files a coach edits are reachable: the emails (``sequence/``, ``system/``,
``broadcasts/``), the two layout files and ``next-step.md``. Anything else, a path
with ``..`` or an absolute path, is refused before the disk is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from funnel.core.sequence import read_email_file
from funnel.mail.check_support import find_source
from funnel.mail.compose import NEXT_STEP_FILE

# sequences/NAME/NN-slug.md (the plan is sequences/plan/; an old single sequence/ still
# works), system/, broadcasts/ and the emails rules send (automations/).
EMAIL_FOLDERS = ("sequences", "sequence", "system", "broadcasts", "automations")
_SEQUENCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
# Files that are not emails, under names no email slug can take (slugs have no dots).
SPECIAL = {"layout.html": "layout/base.html", "layout.txt": "layout/base.txt",
           "next-step.md": NEXT_STEP_FILE}
KIND_OF_FOLDER = {"sequences": "sequence step", "sequence": "plan step",
                  "system": "system email", "broadcasts": "newsletter",
                  "automations": "email a rule sends", "layout": "layout"}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9.-]{0,99}$")
_FILE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}\.md$")
DRAFT_SUFFIX = ".draft"
LOCK_NAME = ".studio.lock"


class StudioError(ValueError):
    """Refused input, with the message the coach sees and the HTTP status a front uses."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class EmailFile:
    """One editable file: where it is, what the editor calls it, what kind it is."""

    root: Path
    rel: str  # e.g. "sequence/01-stretch.md"
    slug: str

    @property
    def path(self) -> Path:
        return self.root / self.rel

    @property
    def draft_path(self) -> Path:
        return self.root / (self.rel + DRAFT_SUFFIX)

    @property
    def folder(self) -> str:
        return self.rel.split("/", 1)[0] if "/" in self.rel else ""

    @property
    def kind(self) -> str:
        if self.rel == NEXT_STEP_FILE:
            return "end of the plan"
        if self.rel.startswith("sequences/plan/"):
            return "plan step"
        return KIND_OF_FOLDER.get(self.folder, "email")

    @property
    def is_email(self) -> bool:
        return self.folder in EMAIL_FOLDERS

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def read_draft(self) -> str | None:
        try:
            return self.draft_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None


def content_hash(text: str | None) -> str:
    """What the editor's form carries to tell which version it opened ("" = no file)."""
    return "" if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve(emails_dir: str | Path, slug_or_path: str, *, new: bool = False) -> EmailFile:
    """The file a slug (``stretch``, ``layout.html``) or a relative path
    (``broadcasts/june.md``) names. ``new``: a path may name a file not yet written."""
    root = Path(emails_dir)
    name = str(slug_or_path or "")
    if "/" in name or "\\" in name or name.endswith(".md") and name not in SPECIAL:
        return _by_path(root, name, new=new)
    if ".." in name or not _SLUG.match(name):
        raise StudioError(f"'{name[:60]}' is not the name of an email: use the slug from its "
                          "front matter (lowercase letters, digits and hyphens)", 400)
    if name in SPECIAL:
        return EmailFile(root, SPECIAL[name], name)
    src = find_source(root, name)
    if src is None:
        raise StudioError(f"there is no email with the slug '{name}'", 404)
    return EmailFile(root, src.path.relative_to(root).as_posix(), name)


def _by_path(root: Path, rel: str, *, new: bool) -> EmailFile:
    parts = rel.replace("\\", "/").split("/")
    special = {v: k for k, v in SPECIAL.items()}
    if rel in special:
        return EmailFile(root, rel, special[rel])
    in_sequence = (len(parts) == 3 and parts[0] == "sequences"
                   and bool(_SEQUENCE_NAME.match(parts[1])))
    if (not (in_sequence or len(parts) == 2) or parts[0] not in EMAIL_FOLDERS
            or not _FILE.match(parts[-1]) or ".." in rel or rel.startswith("/")):
        raise StudioError(f"'{rel[:80]}' is not an email file: emails live in "
                          "sequences/NAME/, system/, broadcasts/ or automations/ as NAME.md",
                          400)
    found = EmailFile(root, rel, Path(parts[-1]).stem)
    if not new and not found.path.is_file():
        raise StudioError(f"there is no email file '{rel}'", 404)
    if found.path.is_file():
        try:
            slug = read_email_file(found.path).slug or found.slug
        except (ValueError, UnicodeDecodeError):
            slug = found.slug
        return EmailFile(root, rel, slug)
    return found


def write_atomically(path: Path, content: str | bytes) -> None:
    """The whole new file or the old one, never half: a worker may read it any moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(emails_dir: str | Path) -> Iterator[None]:
    """One save at a time across every web process: compare, then write, undisturbed."""
    path = Path(emails_dir) / LOCK_NAME
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def fill_emails_dir(target: str | Path, shipped: str | Path) -> bool:
    """On first start, copy the shipped emails into an absent or empty EMAILS_DIR.
    True if it copied. Copied to a sibling folder first and renamed into place, so a
    second process starting at the same moment never sees half a folder."""
    target, shipped = Path(target), Path(shipped)
    if target.resolve() == shipped.resolve():
        return False
    if target.is_dir() and any(target.iterdir()):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix="." + target.name + "."))
    try:
        shutil.copytree(shipped, staging / "emails",
                        ignore=shutil.ignore_patterns("*" + DRAFT_SUFFIX, LOCK_NAME))
        if target.is_dir():
            target.rmdir()  # empty, checked above; fails (rightly) if another process filled it
        os.rename(staging / "emails", target)
    except OSError:
        if target.is_dir() and any(target.iterdir()):
            return False  # another process won the race
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True
