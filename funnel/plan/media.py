"""Pictures in ``emails/images/``: found by name, served under content-hashed names,
and turned from SVG into PNG for email (mail programs do not show SVG).

Flask-free. A name like ``stretch-2-sink.3f9a1c0b2d4e.png`` carries the first 12 hex
digits of the SHA-256 of the source file, so a changed drawing gets a new address
and every address can be cached for a year. An address whose digest is out of date
(an email sent before the drawing changed) still gets the current picture, with a
short cache time, so old emails never show a broken image.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from funnel.core.rendering import Picture

MEDIA_PREFIX = "/media/"
CONTENT_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
# Emails are 600 px wide: PNGs are drawn at twice that so they stay sharp on phones.
EMAIL_PNG_WIDTH = 1200
# The content column of the email layout (600 px card less its padding).
EMAIL_COLUMN = 552
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HASHED = re.compile(r"^(?P<stem>[A-Za-z0-9][A-Za-z0-9._-]*?)\.(?P<digest>[0-9a-f]{12})"
                     r"\.(?P<ext>svg|png|jpe?g|gif)$")
_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(px)?\s*$")


class ImageError(ValueError):
    """A picture that cannot be used: unknown type, unreadable, or no size."""


@dataclass(frozen=True)
class Served:
    body: bytes
    content_type: str
    current: bool  # False: the address named an older version of the picture


def image_size(data: bytes, suffix: str) -> tuple[int, int]:
    """Width and height in pixels (for SVG: its width/height, else its viewBox)."""
    suffix = suffix.lower()
    if suffix == ".png":
        if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
            raise ImageError("not a PNG file")
        return struct.unpack(">II", data[16:24])
    if suffix == ".gif":
        if data[:4] != b"GIF8":
            raise ImageError("not a GIF file")
        return struct.unpack("<HH", data[6:10])
    if suffix in (".jpg", ".jpeg"):
        return _jpeg_size(data)
    if suffix == ".svg":
        return _svg_size(data)
    raise ImageError(f"'{suffix}' pictures are not supported: use SVG, PNG, JPEG or GIF")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    if data[:2] != b"\xff\xd8":
        raise ImageError("not a JPEG file")
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise ImageError("no size found in the JPEG file")


def _svg_size(data: bytes) -> tuple[int, int]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ImageError(f"not a readable SVG file ({exc})") from exc
    if not root.tag.endswith("svg"):
        raise ImageError("not an SVG file")
    w, h = _LENGTH.match(root.get("width", "")), _LENGTH.match(root.get("height", ""))
    if w and h:
        return round(float(w[1])), round(float(h[1]))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(box) == 4:
        try:
            return round(float(box[2])), round(float(box[3]))
        except ValueError:
            pass
    raise ImageError("the SVG has no width/height or viewBox")


def svg_to_png(svg: bytes, width: int = EMAIL_PNG_WIDTH) -> bytes:
    """Rasterise an SVG with resvg (a wheel: no system libraries needed)."""
    import resvg_py

    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=svg.decode("utf-8"), width=width))
    except Exception as exc:  # resvg reports parse errors as plain exceptions
        raise ImageError(f"the SVG could not be drawn ({exc})") from exc


class MediaLibrary:
    """The pictures in one folder. Reads files fresh, so a dropped-in image works
    at once; PNG renderings are kept in memory by content digest."""

    def __init__(self, images_dir: str | Path) -> None:
        self.images_dir = Path(images_dir)
        self._png: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._refs: dict[tuple, Picture | None] = {}

    # -- names -------------------------------------------------------------------

    def path(self, name: str) -> Path | None:
        """The file called ``name`` in the folder, or None (never outside it)."""
        if not _NAME.match(name) or Path(name).suffix.lower() not in CONTENT_TYPES:
            return None
        path = self.images_dir / name
        return path if path.is_file() else None

    @staticmethod
    def name_from_ref(ref: str) -> str | None:
        """``images/x.svg`` (as written in Markdown) → ``x.svg``; None for other addresses."""
        ref = ref.strip()
        ref = ref.removeprefix("./")
        if not ref.startswith("images/"):
            return None
        return ref[len("images/"):]

    def names(self) -> list[str]:
        if not self.images_dir.is_dir():
            return []
        return sorted(p.name for p in self.images_dir.iterdir()
                      if p.is_file() and self.path(p.name) is not None)

    def hashed_name(self, name: str, *, for_email: bool) -> str | None:
        path = self.path(name)
        if path is None:
            return None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        suffix = path.suffix.lower()
        if for_email and suffix == ".svg":
            suffix = ".png"
        return f"{path.stem}.{digest}{suffix}"

    def resolver(self, base_url: Callable[[], str]):
        """What the renderer calls for ``![alt](images/x.svg)``; ``base_url`` is asked
        each time, so links follow the site's address if it changes."""
        def resolve(reference: str, for_email: bool) -> Picture | None:
            name = self.name_from_ref(reference)
            return None if name is None else self.ref(base_url(), name, for_email=for_email)
        return resolve

    def ref(self, base_url: str, name: str, *, for_email: bool) -> Picture | None:
        """The picture's absolute address and display size (None if it is missing
        or unreadable; ``emails check`` reports why)."""
        # Every email of a batch asks for the same pictures: read each file once
        # per version (one stat per call tells a saved file from the cached one).
        if not _NAME.match(name):
            return None
        try:
            st = (self.images_dir / name).stat()
        except OSError:
            return None
        key = (base_url, name, for_email, st.st_mtime_ns, st.st_size)
        cached = self._refs.get(key, _NO_REF)
        if cached is not _NO_REF:
            return cached  # type: ignore[return-value]
        picture = self._ref(base_url, name, for_email=for_email)
        with self._lock:
            if len(self._refs) > 256:
                self._refs.clear()
            self._refs[key] = picture
        return picture

    def _ref(self, base_url: str, name: str, *, for_email: bool) -> Picture | None:
        hashed = self.hashed_name(name, for_email=for_email)
        path = self.path(name)
        if hashed is None or path is None:
            return None
        try:
            width, height = image_size(path.read_bytes(), path.suffix)
        except ImageError:
            return None
        if for_email and width > EMAIL_COLUMN:
            width, height = EMAIL_COLUMN, max(1, round(height * EMAIL_COLUMN / width))
        return Picture(base_url.rstrip("/") + MEDIA_PREFIX + hashed, width, height)

    # -- serving -------------------------------------------------------------------

    def png(self, path: Path) -> bytes:
        data = path.read_bytes()
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._png.get(key)
        if cached is None:
            cached = svg_to_png(data)
            with self._lock:
                if len(self._png) > 256:
                    self._png.clear()
                self._png[key] = cached
        return cached

    def serve(self, hashed: str) -> Served | None:
        """The bytes behind a hashed name, or None if no such picture exists."""
        m = _HASHED.match(hashed)
        if m is None:
            return None
        ext = "." + m["ext"]
        candidates = [f"{m['stem']}{ext}"] + (
            [f"{m['stem']}.svg"] if ext == ".png" else [])
        for name in candidates:
            path = self.path(name)
            if path is None:
                continue
            data = path.read_bytes()
            current = hashlib.sha256(data).hexdigest()[:12] == m["digest"]
            if path.suffix.lower() == ext:
                return Served(data, CONTENT_TYPES[ext], current)
            return Served(self.png(path), CONTENT_TYPES[".png"], current)
        return None

    def warm(self) -> int:
        """Draw every SVG as PNG now (at start-up), so no reader waits for it."""
        count = 0
        for name in self.names():
            path = self.path(name)
            if path is not None and path.suffix.lower() == ".svg":
                self.png(path)
                count += 1
        return count


_NO_REF = object()
