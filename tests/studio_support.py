"""Shared arrangements for the studio (email editor) tests: a copy of emails/ per
test, the editor page's hidden fields, small pictures made with Pillow, an upload
form as a browser sends it, and what a folder holds (to show nothing changed)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select

from funnel.config import PROJECT_ROOT
from funnel.models import EmailRevision

SHIPPED = PROJECT_ROOT / "emails"
STEP = "lateral-hip-stretch"              # the plan's first email
STEP_FILE = "sequences/plan/01-stretch.md"


def copy_emails(target: Path) -> Path:
    return Path(shutil.copytree(SHIPPED, target))


def form_fields(page_html: str) -> dict[str, str]:
    """The editor form's CSRF token and the hashes of the versions it opened (the live
    file's and the draft's beside it)."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    base = re.search(r'name="base" value="([^"]*)"', page_html)
    draft_base = re.search(r'name="draft_base" value="([^"]*)"', page_html)
    assert token and base and draft_base, "no editor form on the page"
    return {"csrf_token": token.group(1), "base": base.group(1),
            "draft_base": draft_base.group(1)}


def open_editor(client, slug: str = STEP) -> dict[str, str]:
    resp = client.get(f"/admin/emails/{slug}/edit")
    assert resp.status_code == 200, resp.status_code
    return form_fields(resp.get_data(as_text=True))


def save(client, fields: dict[str, str], source: str, slug: str = STEP, action: str = "save"):
    return client.post(f"/admin/emails/{slug}/edit",
                       data={**fields, "source": source, "action": action})


def png(width: int = 200, height: int = 120, *, text_chunk: str = "") -> bytes:
    from PIL import PngImagePlugin

    img = Image.new("RGB", (width, height), (180, 40, 30))
    info = PngImagePlugin.PngInfo()
    if text_chunk:
        info.add_text("Comment", text_chunk)
    out = io.BytesIO()
    img.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def jpeg_with_exif(width: int = 300, height: int = 200) -> bytes:
    img = Image.new("RGB", (width, height), (20, 90, 160))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"          # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS: latitude
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (100, 100)).save(out, "GIF")
    return out.getvalue()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".studio.lock"}


def revision_count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(EmailRevision))


def multipart(fields: dict[str, str], picture: bytes | None, name: str) -> bytes:
    """The form as a browser sends it. Built here because the test client spools a big
    body to a temporary file that a request cut off early never closes."""
    parts = [f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    if picture is not None:
        parts.append(f'--b\r\nContent-Disposition: form-data; name="picture"; '
                     f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
                     + picture + b"\r\n")
    return b"".join(parts) + b"--b--\r\n"
