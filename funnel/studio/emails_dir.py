"""EMAILS_DIR on start: filled from the emails shipped with the code, and later given
the shipped files an upgrade adds.

In production the emails live outside the code (``/var/lib/funnel/emails``, see
deploy/), so an upgrade of the code never overwrites what the coach wrote in the
browser. The web service fills it on its first start; a worker that cannot write
there says so instead of sending from an empty folder.

After an upgrade that ships a new file (a new system email, a layout piece, a
picture), each start copies it into the existing folder if it is missing there,
never over a file of the coach's and never deleting one. ``.shipped`` in the
folder lists every shipped file already offered once (copied, or found there), so
a file the coach deleted on purpose is not brought back by the next start.

Held back, only named in the log: sequence steps and sequences, the rules
(``automations.yml``) and newsletters. Those change who is mailed what; a new plan
step appearing in the coach's plan, or a rule that unsubscribes the silent, is the
coach's decision, not an upgrade's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from funnel.config import ConfigError
from funnel.studio.files import DRAFT_SUFFIX, fill_emails_dir, locked, write_atomically

log = logging.getLogger(__name__)

MANIFEST = ".shipped"
HELD_BACK = ("sequences/", "sequence/", "broadcasts/", "automations.yml")
_MANIFEST_HEAD = ("# Shipped files already offered to this folder: funnel copies a shipped file\n"
                  "# missing here once, never again after you delete it. Remove a line to have\n"
                  "# that file offered again on the next start.\n")


@dataclass
class EmailsDirReport:
    """What a start did to EMAILS_DIR, logged once logging is set up."""

    emails_dir: Path
    filled: bool = False
    added: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # could not be added here
    error: str = ""

    def log(self, shipped: str | Path) -> None:
        if self.filled:
            log.info("EMAILS_DIR %s filled from the shipped emails in %s", self.emails_dir,
                     shipped)
        for rel in self.added:
            log.info("EMAILS_DIR: added %s, shipped with this version and missing here", rel)
        for rel in self.held_back:
            log.info("EMAILS_DIR: not adding %s, shipped with this version: a sequence, rule "
                     "or newsletter changes who is mailed what; copy it from %s yourself if "
                     "you want it", rel, Path(shipped, rel))
        if self.missing:
            log.warning("EMAILS_DIR %s lacks %s, shipped with this version, and this process "
                        "cannot add it (%s); the web service adds it on its start",
                        self.emails_dir, ", ".join(self.missing), self.error)


def ensure_emails_dir(emails_dir: str | Path, shipped: str | Path) -> EmailsDirReport:
    """Fill an absent or empty EMAILS_DIR, else add the shipped files it lacks."""
    report = EmailsDirReport(Path(emails_dir))
    try:
        report.filled = fill_emails_dir(emails_dir, shipped)
    except OSError as exc:
        raise ConfigError(
            f"EMAILS_DIR {emails_dir} is empty and cannot be filled from {shipped} ({exc}). "
            "Start funnel-web first (it fills the folder on its first start), or copy the "
            "shipped emails/ folder there yourself.") from exc
    if Path(emails_dir).resolve() != Path(shipped).resolve():
        add_missing_shipped(report, Path(shipped))
    return report


def shipped_files(shipped: Path) -> list[str]:
    return sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*")
                  if p.is_file() and not p.name.startswith(".")
                  and not p.name.endswith(DRAFT_SUFFIX) and "__pycache__" not in p.parts)


def _offered(target: Path) -> set[str]:
    try:
        text = (target / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return {line.strip() for line in text.splitlines()
            if line.strip() and not line.startswith("#")}


def add_missing_shipped(report: EmailsDirReport, shipped: Path) -> None:
    target = report.emails_dir
    todo = [rel for rel in shipped_files(shipped) if rel not in _offered(target)]
    if not todo:
        return
    try:
        # Every web process starts at once: one at a time, the others then find
        # the files there and the manifest written.
        with locked(target):
            offered = _offered(target)
            for rel in todo:
                if rel in offered:
                    continue
                if not (target / rel).exists():
                    if rel.startswith(HELD_BACK):
                        report.held_back.append(rel)
                    elif _copy_new(shipped / rel, target / rel):
                        report.added.append(rel)
                offered.add(rel)
            write_atomically(target / MANIFEST,
                             _MANIFEST_HEAD + "".join(f"{r}\n" for r in sorted(offered)))
    except OSError as exc:  # a read-only worker: the web service does it
        report.missing = [rel for rel in todo if not (target / rel).exists()
                          and not rel.startswith(HELD_BACK)]
        report.error = exc.strerror or str(exc)


def _copy_new(source: Path, dest: Path) -> bool:
    """Copy only if ``dest`` does not exist: linked into place, which fails rather
    than replace a file the coach saved a moment ago."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix="." + dest.name + ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(source.read_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
