"""The email check's answer kept between admin page loads.

Checking renders every email (about a second of CPU on a busy machine), and the
emails page, a preview, the dashboard and scheduling all want it. The answer
depends only on the files under the emails folder and the app's settings, so it
is kept with a fingerprint of that folder and used while the fingerprint holds:
a file saved in the studio, restored, uploaded, edited on disk, added or removed
changes the fingerprint, so the next load checks again. Each process keeps its
own answer (gunicorn's workers each check once after a change). The emails page's
list of files (each one's front matter parsed) is kept the same way.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from funnel.mail.check import run_check
from funnel.mail.check_support import Problem

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "funnel_email_check"
# Files this small are fingerprinted by their bytes: two saves within one tick of
# the file system's clock can leave the same size and mtime. Pictures, the large
# files, by size, mtime and inode (a save replaces the file: a new inode).
READ_UNDER = 256 * 1024


def folder_fingerprint(root: str | Path) -> bytes:
    """Changes whenever a file under ``root`` is added, removed or changed."""
    digest = hashlib.blake2b(digest_size=16)
    seen: set[tuple[int, int]] = set()

    def walk(folder: str) -> None:
        try:
            st = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            digest.update(f"{folder}\0missing\0".encode())
            return
        if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in entries:
            try:
                if entry.is_dir():
                    walk(entry.path)
                    continue
                st = entry.stat()
            except OSError:
                continue
            digest.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0".encode())
            if st.st_size < READ_UNDER:
                try:
                    with open(entry.path, "rb") as fh:
                        digest.update(fh.read())
                except OSError:
                    digest.update(b"\0unreadable")

    walk(os.fspath(root))
    return digest.digest()


_lock = threading.Lock()
T = TypeVar("T")


def kept(app: Flask, name: str, compute: Callable[[], T]) -> T:
    """``compute()``'s answer, kept under ``name`` while no file under the emails
    folder changes. The fingerprint is taken before computing: a file changed
    meanwhile makes the next ask compute again."""
    emails_dir = app.extensions["funnel"].settings.emails_dir
    key = (emails_dir, folder_fingerprint(emails_dir))
    store = app.extensions.setdefault(EXTENSION, {})
    hit = store.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    # One thread computes; the others of this process wait for its answer.
    with _lock:
        hit = store.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute()
        store[name] = (key, value)
    return value


def kept_check(app: Flask) -> list[Problem]:
    """What ``run_check(app)`` answers now, from the kept answer when no file changed."""
    return list(kept(app, "check", lambda: tuple(run_check(app))))
