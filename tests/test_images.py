"""Pictures in emails and on the site: drawn as SVG in the repository, PNG in mail,
served under content-hashed names with long cache headers, checked by `emails check`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from funnel.config import PROJECT_ROOT
from funnel.core.sequence import load_sequence
from funnel.plan.media import MediaLibrary, image_size
from tests.test_emails import composer, run_cli, source

EMAILS = PROJECT_ROOT / "emails"
IMG = re.compile(r'<img [^>]*src="([^"]+)"[^>]*>')


@pytest.mark.parametrize("slug", [s.slug for s in load_sequence(EMAILS)])
def test_every_plan_email_shows_a_drawing_as_png_with_alt_text(slug):
    html = composer("https://runstronger.example").render(
        source(slug), _sample(), "d-1").html
    tags = [t for t in IMG.findall(html) if "/media/" in t and "coach." not in t]
    assert tags, f"{slug} has no illustration"
    for src in tags:
        assert re.fullmatch(r"https://runstronger\.example/media/[\w-]+\.[0-9a-f]{12}\.png", src)
    for tag in re.findall(r"<img [^>]*>", html):
        assert re.search(r'alt="[^"]{12,}"', tag), tag
        assert re.search(r'width="\d+"', tag), tag


def _sample():
    from funnel.mail.check import sample_subscriber

    return sample_subscriber()


def test_images_are_served_hashed_with_long_cache(client):
    url = composer().render(source("glute-strength"), _sample(), "d-1").html
    path = re.search(r'src="http://localhost(/media/glute-bridge\.[0-9a-f]{12}\.png)"', url).group(1)
    resp = client.get(path)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert "immutable" in resp.headers["Cache-Control"]
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    width, height = image_size(resp.data, ".png")
    assert width == 1200 and 200 < height < 1000
    # The same drawing as SVG for the site.
    svg = client.get(path.replace(".png", ".svg"))
    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml")


def test_an_outdated_address_still_shows_the_picture_briefly_cached(client):
    resp = client.get("/media/glute-bridge.000000000000.png")
    assert resp.status_code == 200
    assert "immutable" not in resp.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/media/nothing.0123456789ab.png", "/media/..%2Fcoach.yml",
                                  "/media/coach.yml", "/media/glute-bridge.svg"])
def test_unknown_or_unhashed_media_is_404(client, path):
    assert client.get(path).status_code == 404


def test_a_marketer_drops_in_an_image_and_references_it(tmp_path, emails_copy):
    # A real PNG, written by the SVG renderer.
    png = MediaLibrary(EMAILS / "images").png(EMAILS / "images" / "a-skip.svg")
    (emails_copy / "images" / "hill-run.png").write_bytes(png)
    path = emails_copy / "sequences" / "plan" / "02-hip-mobility.md"
    path.write_text(path.read_text() + "\n![A runner on a hill, leaning slightly forward]"
                                       "(images/hill-run.png)\n")
    html = composer(emails_dir=emails_copy).render(source("hip-mobility", emails_copy),
                                                    _sample(), "d-1").html
    assert re.search(r'src="http://localhost/media/hill-run\.[0-9a-f]{12}\.png"', html)
    result = run_cli(tmp_path, emails_copy, "emails", "check", "--strict")
    assert result.exit_code == 0, result.output


@pytest.fixture
def emails_copy(tmp_path) -> Path:
    return Path(shutil.copytree(EMAILS, tmp_path / "emails"))


@pytest.mark.parametrize("markdown, expected", [
    ("![A missing drawing of a lunge](images/lunge.svg)", "image 'images/lunge.svg' does not exist"),
    ("![](images/a-skip.svg)", "image without alt text"),
    ("![A drawing](images/huge.png)", "pixels wide"),
    ("![A drawing of nothing](images/broken.svg)", "not a readable SVG"),
    ("![A drawing](images/notes.txt)", "use SVG, PNG, JPEG or GIF"),
])
def test_check_refuses_bad_images(tmp_path, emails_copy, markdown, expected):
    (emails_copy / "images" / "broken.svg").write_text("<svg")
    (emails_copy / "images" / "notes.txt").write_text("hello")
    header = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + (9000).to_bytes(4, "big") \
        + (200).to_bytes(4, "big")
    (emails_copy / "images" / "huge.png").write_bytes(header + b"\0" * 20)
    path = emails_copy / "sequences" / "plan" / "03-glute-strength.md"
    path.write_text(path.read_text() + f"\n{markdown}\n")
    result = run_cli(tmp_path, emails_copy, "emails", "check")
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert f"{path}:" in result.output
