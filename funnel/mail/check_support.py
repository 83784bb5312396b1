"""What the email check reports and the small helpers it shares: problems, the sample
reader every file is rendered for, where the email files are, and "did you mean"."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import ChainableUndefined

from funnel.core.sequence import (
    EmailFileError,
    EmailSource,
    plan_folder,
    read_email_file,
    sequence_files,
)
from funnel.core.sequences import send_emails, sequence_folders
from funnel.models import Subscriber

ERROR = "error"


WARNING = "warning"


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")


_BROKEN_LINK = re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)")


# What an unknown variable becomes while the rest of a file is checked: a harmless
# address, so one typo is reported once (as unknown) and not again as an empty link.
UNKNOWN = "https://unknown-variable.invalid/"


class _Unknown(ChainableUndefined):
    def __str__(self) -> str:
        return UNKNOWN


@dataclass(frozen=True, order=True)
class Problem:
    path: Path
    line: int
    level: str
    message: str

    def display(self, root: Path | None = None) -> str:
        path = self.path
        if root is not None:
            try:
                path = self.path.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        return f"{path}:{self.line}: {self.level}: {self.message}"

    def __str__(self) -> str:
        return self.display()


def sample_subscriber() -> Subscriber:
    """The made-up reader every preview and check renders for (never saved)."""
    return Subscriber(first_name="Alex", email="alex@example.com", public_id="preview")


def email_files(emails_dir: str | Path) -> list[Path]:
    """Every email a marketer edits: the drip sequence, the newsletter's broadcasts,
    then the system emails."""
    root = Path(emails_dir)
    return (sequence_files(root) + other_sequence_files(root)
            + sorted((root / "broadcasts").glob("*.md"))
            + sorted((root / "system").glob("*.md")) + send_emails(root))


NEXT_STEP_FILE = "next-step.md"


def other_sequence_files(root: Path) -> list[Path]:
    """The emails of every sequence but the plan (emails/sequences/<name>/)."""
    plan = plan_folder(root)
    return [p for folder in sequence_folders(root) if folder != plan
            for p in sorted(folder.glob("*.md"))]


def find_source(emails_dir: str | Path, slug: str) -> EmailSource | None:
    """The email whose front matter says ``slug: …``, read fresh from disk."""
    for path in email_files(emails_dir):
        try:
            src = read_email_file(path)
        except EmailFileError:
            continue
        if src.slug == slug:
            return src
    return None


class _Html(HTMLParser):
    """Collects links, images and visible text from the rendered layout."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.anchors: list[tuple[int, str]] = []
        self.images: list[tuple[int, str | None]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"] or "")
            self.anchors.append((self.getpos()[0], a["href"] or ""))
        elif tag == "img":
            self.images.append((self.getpos()[0], a.get("alt")))

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    @property
    def text(self) -> str:
        return "".join(self._text)


def _line_of_name(text: str, name: str) -> int:
    """0-based line of the first Jinja tag that mentions ``name``."""
    pattern = re.compile(r"({{|{%)[^}]*?\b" + re.escape(name) + r"\b")
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) if m else 0


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
