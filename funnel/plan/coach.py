"""The coach's identity, kept in ``emails/coach.yml`` so the marketer edits it
without Python. The site (byline, landing page) and every email's signature and
Reply-To read it from here."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

import yaml

FILE_NAME = "coach.yml"
FIELDS = ("name", "role", "bio", "photo", "photo_alt", "sign_off", "reply_to", "reply_invite")


class CoachFileError(ValueError):
    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


@dataclass(frozen=True)
class Coach:
    name: str
    role: str
    bio: str
    photo: str  # relative to the emails folder, e.g. images/coach.svg
    photo_alt: str
    sign_off: str
    reply_to: str
    reply_invite: str

    @property
    def photo_name(self) -> str:
        """The photo's file name inside emails/images/."""
        return Path(self.photo).name


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if line.split(":", 1)[0].strip() == key:
            return i
    return 1


def load_coach(emails_dir: str | Path) -> Coach:
    """Read and validate coach.yml; every problem names the file and line."""
    path = Path(emails_dir) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CoachFileError(path, 1, "the coach file is missing") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CoachFileError(path, (mark.line + 1) if mark else 1, f"not readable: {exc}") from exc
    if not isinstance(data, dict):
        raise CoachFileError(path, 1, "write one 'key: value' line per field")
    values: dict[str, str] = {}
    for key in FIELDS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CoachFileError(path, _line_of(text, key), f"'{key}' is missing or empty")
        values[key] = " ".join(value.split())
    address = parseaddr(values["reply_to"])[1]
    if "@" not in address or " " in address or address.startswith("@") or address.endswith("@"):
        raise CoachFileError(path, _line_of(text, "reply_to"),
                             f"reply_to '{values['reply_to']}' is not an email address")
    photo = values["photo"]
    if not photo.startswith("images/") or "/" in photo[len("images/"):] or ".." in photo:
        raise CoachFileError(path, _line_of(text, "photo"),
                             "photo must be a file in emails/images/, e.g. images/coach.svg")
    if not (Path(emails_dir) / photo).is_file():
        raise CoachFileError(path, _line_of(text, "photo"), f"photo '{photo}' does not exist")
    unknown = sorted(set(map(str, data)) - set(FIELDS))
    if unknown:
        raise CoachFileError(path, _line_of(text, unknown[0]), f"unknown field '{unknown[0]}'")
    return Coach(**values)
