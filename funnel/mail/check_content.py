"""The checks that read an email's words: subject and preheader lengths, the
Markdown, every link and every picture. A part of ``Checker`` (funnel.mail.check)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt

from funnel.core.sequence import (
    EmailSource,
)
from funnel.mail.check_support import (
    _BROKEN_LINK,
    _HTML_TAG,
    UNKNOWN,
)
from funnel.plan.media import CONTENT_TYPES, ImageError, MediaLibrary, image_size, svg_to_png

SUBJECT_WARN, SUBJECT_MAX, PREHEADER_WARN = 60, 100, 110
# Pictures: bigger files load slowly on phones; tiny or huge ones are usually a mistake.
IMAGE_WARN_BYTES, IMAGE_MAX_BYTES = 300_000, 1_000_000
IMAGE_MIN_WIDTH, IMAGE_MAX_WIDTH = 48, 2400


class ContentChecks:
    """Mixed into ``Checker``, which provides what is declared here."""

    emails_dir: Path
    base_url: str
    route_exists: Callable[[str], bool] | None
    trusted_urls: set[str]
    _md: MarkdownIt

    def error(self, path: Path, line: int, message: str) -> None:
        raise NotImplementedError

    def warning(self, path: Path, line: int, message: str) -> None:
        raise NotImplementedError

    def _loose(self, text: str) -> str:
        raise NotImplementedError

    def _check_lengths(self, src: EmailSource) -> None:
        path, lines = src.path, src.meta_lines
        if src.meta.get("subject") not in (None, ""):
            subject = self._loose(src.subject).replace(UNKNOWN, "").strip()
            n = len(subject)
            line = lines.get("subject", 1)
            if n == 0:
                self.error(path, line, "the subject is empty")
            elif n > SUBJECT_MAX:
                self.error(path, line, f"the subject is {n} characters: keep it under "
                                       f"{SUBJECT_MAX} (ideally {SUBJECT_WARN})")
            elif n > SUBJECT_WARN:
                self.warning(path, line, f"the subject is {n} characters: inboxes cut it "
                                         f"off after about {SUBJECT_WARN}")
        preheader = self._loose(src.preheader).replace(UNKNOWN, "").strip()
        if not preheader:
            self.warning(path, lines.get("preheader", 1),
                         "no preheader: inboxes will show the first words of the body instead")
        elif len(preheader) > PREHEADER_WARN:
            self.warning(path, lines.get("preheader", 1),
                         f"the preheader is {len(preheader)} characters: inboxes show about "
                         f"{PREHEADER_WARN}")

    def _check_markdown(self, src: EmailSource) -> None:
        markdown = self._loose(src.body)
        md_lines = markdown.splitlines()
        for tok in self._md.parse(markdown):
            if tok.type != "inline" or not tok.map:
                continue
            start, end = tok.map

            def line_of(*needles: str, _s: int = start, _e: int = end) -> int:
                for i in range(_s, min(_e, len(md_lines))):
                    if any(n and n in md_lines[i] for n in needles):
                        return src.body_line + i
                return src.body_line + _s

            for child in tok.children or []:
                if child.type == "link_open":
                    href = str(child.attrGet("href") or "")
                    self._check_href(src.path, line_of(f"]({href}", href, "]("), href, "link")
                elif child.type == "image":
                    href = str(child.attrGet("src") or "")
                    line = line_of(f"]({href}", href, "![")
                    if not child.content.strip():
                        self.error(src.path, line, "image without alt text: write ![what it "
                                                   "shows](address)")
                    if MediaLibrary.name_from_ref(href) is not None:
                        self.check_picture(src.path, line, href)
                    else:
                        self._check_href(src.path, line, href, "image")
                elif child.type == "text":
                    broken = _BROKEN_LINK.search(child.content)
                    if broken:
                        self.error(src.path, line_of(broken.group(0)[:20]),
                                   f"'{broken.group(0)[:60]}' is not read as a link: remove "
                                   "spaces from the address")
                    tag = _HTML_TAG.search(child.content)
                    if tag:
                        self.warning(src.path, line_of(tag.group(0)),
                                     f"HTML '{tag.group(0)[:40]}' shows as typed: use Markdown "
                                     "instead")

    def _check_href(self, path: Path, line: int, href: str, what: str) -> None:
        raw = unquote(href.strip())
        if raw == "":
            self.error(path, line, f"{what} with no address")
            return
        if raw.startswith("#"):
            self.error(path, line, f"{what} to '{raw}' points nowhere in an email")
            return
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme in ("mailto", "tel") and what == "link":
            return
        if scheme not in ("http", "https") or not parts.netloc:
            self.error(path, line, f"{what} to '{raw}' points nowhere in an email: use "
                                   "{{ site_url }} or a full https:// address")
            return
        if raw in self.trusted_urls or raw.startswith(UNKNOWN):
            return
        if raw == self.base_url or raw.startswith(self.base_url + "/"):
            site_path = urlsplit(raw[len(self.base_url):] or "/").path or "/"
            if self.route_exists is not None and not self.route_exists(site_path):
                self.error(path, line, f"{what} to '{site_path}' on our site: there is no "
                                       "such page")
        elif scheme == "http":
            self.warning(path, line, f"{what} to '{raw}' is not https")

    def check_picture(self, path: Path, line: int, ref: str) -> None:
        """The file exists, is a picture we can show, and has a sensible size."""
        name = MediaLibrary.name_from_ref(ref) or ""
        suffix = Path(name).suffix.lower()
        if suffix not in CONTENT_TYPES:
            self.error(path, line, f"image '{ref}': '{suffix or name}' pictures are not "
                                   "supported: use SVG, PNG, JPEG or GIF")
            return
        library = MediaLibrary(self.emails_dir / "images")
        file = library.path(name)
        if file is None:
            close = difflib.get_close_matches(name, library.names(), n=1, cutoff=0.6)
            hint = f" (did you mean 'images/{close[0]}'?)" if close else ""
            self.error(path, line, f"image '{ref}' does not exist{hint}: put the file in "
                                   f"{self.emails_dir / 'images'}")
            return
        data = file.read_bytes()
        try:
            width, _height = image_size(data, suffix)
            if suffix == ".svg":
                svg_to_png(data, width=64)  # it must draw, not just parse
        except ImageError as exc:
            self.error(path, line, f"image '{ref}': {exc}")
            return
        if not IMAGE_MIN_WIDTH <= width <= IMAGE_MAX_WIDTH:
            self.error(path, line, f"image '{ref}' is {width} pixels wide: use "
                                   f"{IMAGE_MIN_WIDTH} to {IMAGE_MAX_WIDTH}")
        if len(data) > IMAGE_MAX_BYTES:
            self.error(path, line, f"image '{ref}' is {len(data) // 1000} KB: keep it under "
                                   f"{IMAGE_MAX_BYTES // 1000} KB")
        elif len(data) > IMAGE_WARN_BYTES:
            self.warning(path, line, f"image '{ref}' is {len(data) // 1000} KB: over "
                                     f"{IMAGE_WARN_BYTES // 1000} KB loads slowly on phones")

