"""Pictures taken in from the editor into ``emails/images/``.

Only PNG and JPEG, decoded and drawn again with Pillow: what is kept is pixels, not
the uploaded bytes, so no metadata (GPS position, camera) and nothing hidden rides
along. SVG is refused: a drawing can carry script. Wide pictures are scaled to the
width emails are drawn at (funnel.plan.media), so ``emails check`` passes them.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from funnel.mail.check_content import IMAGE_MAX_BYTES, IMAGE_MIN_WIDTH
from funnel.plan.media import EMAIL_PNG_WIDTH, MediaLibrary
from funnel.studio.files import StudioError, write_atomically

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 8000            # pixels, either way
MAX_PIXELS = 40_000_000    # a 40-megapixel camera picture fits; a decompression bomb does not
MAX_ALT = 250
JPEG_QUALITY = 85


@dataclass(frozen=True)
class SavedPicture:
    name: str      # in emails/images/
    alt: str
    width: int
    height: int

    @property
    def snippet(self) -> str:
        """What goes into the email's Markdown where the picture should show."""
        return f"![{self.alt}](images/{self.name})"


def clean_alt(alt: str) -> str:
    alt = " ".join((alt or "").split())
    if not alt:
        raise StudioError("Write the alt text: a few words saying what the picture shows, "
                          "for readers whose mail program hides pictures. Nothing was saved.")
    if len(alt) > MAX_ALT:
        raise StudioError(f"The alt text is {len(alt)} characters: keep it under {MAX_ALT}. "
                          "Nothing was saved.")
    if any(c in alt for c in "[]"):
        raise StudioError("The alt text cannot hold square brackets [ ]. Nothing was saved.")
    return alt


def file_stem(filename: str) -> str:
    stem = Path(filename or "").stem.lower()
    stem = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:60].strip("-")
    return stem or "picture"


def _decode(data: bytes) -> Image.Image:
    head = data[:2048].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype")) or b"<svg" in head:
        raise StudioError("SVG drawings cannot be uploaded from the browser (they can carry "
                          "script): export it as PNG. Nothing was saved.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
            width, height = image.size
            if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                raise StudioError(f"The picture is {width}×{height} pixels: at most {MAX_SIDE} "
                                  f"a side and {MAX_PIXELS // 1_000_000} megapixels. "
                                  "Nothing was saved.", 413)
            image.load()  # every pixel decoded: a damaged or disguised file fails here
    except StudioError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise StudioError("That file is not a PNG or JPEG picture we can read "
                          f"({type(exc).__name__}). Nothing was saved.") from exc
    return image


def _reencode(image: Image.Image, fmt: str) -> tuple[bytes, str, int, int]:
    image = ImageOps.exif_transpose(image)  # keep the way up the camera meant, then drop EXIF
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if alpha else "RGB"
    image = image.convert(mode)
    if image.width > EMAIL_PNG_WIDTH:
        height = max(1, round(image.height * EMAIL_PNG_WIDTH / image.width))
        image = image.resize((EMAIL_PNG_WIDTH, height), Image.Resampling.LANCZOS)
    # A new image from the pixels alone: no text chunks, ICC profile or EXIF survive.
    clean = Image.frombytes(mode, image.size, image.tobytes())
    out = io.BytesIO()
    if fmt == "PNG":
        clean.save(out, "PNG", optimize=True)
        if out.tell() <= IMAGE_MAX_BYTES or alpha:
            return out.getvalue(), ".png", clean.width, clean.height
        out = io.BytesIO()  # a photo saved as PNG: as JPEG it loads on a phone
    clean.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue(), ".jpg", clean.width, clean.height


def save_picture(images_dir: str | Path, filename: str, data: bytes, alt: str) -> SavedPicture:
    """Check, re-encode and store an uploaded picture; its name never overwrites
    another picture (``name-2.png`` …)."""
    alt = clean_alt(alt)
    if not data:
        raise StudioError("Choose a picture file (PNG or JPEG). Nothing was saved.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise StudioError(f"The picture is {len(data) / 1024 / 1024:.1f} MB: at most "
                          f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB. Nothing was saved.", 413)
    image = _decode(data)
    if image.width < IMAGE_MIN_WIDTH:
        raise StudioError(f"The picture is {image.width} pixels wide: at least "
                          f"{IMAGE_MIN_WIDTH}. Nothing was saved.")
    body, suffix, width, height = _reencode(image, str(image.format))
    folder = Path(images_dir)
    stem = file_stem(filename)
    library = MediaLibrary(folder)
    for n in range(1, 1000):
        name = f"{stem}{'' if n == 1 else f'-{n}'}{suffix}"
        existing = library.path(name)
        if existing is None and not (folder / name).exists():
            write_atomically(folder / name, body)
            return SavedPicture(name, alt, width, height)
        if existing is not None and existing.read_bytes() == body:
            return SavedPicture(name, alt, width, height)  # the same picture again
    raise StudioError("Too many pictures with that name: rename the file. Nothing was saved.")
