"""The whole plan as a download: a printable page and a PDF, through a personal
signed link, at once after confirming; refused to everyone else."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from funnel.config import PROJECT_ROOT
from funnel.core.sequence import load_sequence
from funnel.models import Subscriber
from funnel.plan.document import exercise_names
from funnel.runtime import make_worker
from tests.artefacts import artefact_dir
from tests.conftest import sign_up, sign_up_and_confirm

SEQUENCE = load_sequence(PROJECT_ROOT / "emails")
EXERCISES = [name for step in SEQUENCE for name in exercise_names(step.source.body)]
PLAN_LINK = re.compile(r'href="(/plan/[A-Za-z0-9._\-]+)"')


def plan_path(html: str) -> str:
    m = PLAN_LINK.search(html)
    assert m, "no link to the plan"
    return m.group(1)


def test_every_week_and_exercise_is_known():
    # A negative control for the checks below: the plan has six weeks and many exercises.
    assert len(EXERCISES) >= 30 and "90/90 switches" in EXERCISES and "A-skip" in EXERCISES


def test_plan_is_there_right_after_confirming(app, client, db, outbox):
    welcome = sign_up_and_confirm(client, outbox, "reader@example.com", "Robin")
    page_path = plan_path(welcome.get_data(as_text=True))

    page = client.get(page_path)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    for week in range(1, 7):
        assert f"Week {week}</h2>" in html, week
    for name in EXERCISES:
        assert name in html, name
    assert "Safety first" in html and html.count("<strong>Safety:</strong>") == len(SEQUENCE)
    # Pictures as SVG, under hashed names; each with alt text.
    imgs = re.findall(r'<img src="([^"]+)"[^>]*alt="([^"]+)"', html)
    assert len(imgs) >= len(SEQUENCE) + 1
    assert all(re.search(r"/media/[\w-]+\.[0-9a-f]{12}\.svg$", src) for src, _ in imgs), imgs

    pdf = client.get(page_path + ".pdf")
    assert pdf.status_code == 200
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert "attachment" in pdf.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(pdf.data))
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages)
    for week in range(1, 7):
        assert f"Week {week}" in text, week
    for name in EXERCISES:
        assert name in text, name
    assert "Safety first" in text
    # One week per page at least, and not a runaway layout.
    assert 6 <= len(reader.pages) <= 30, len(reader.pages)
    (artefact_dir() / "run-stronger-plan.pdf").write_bytes(pdf.data)


def test_first_email_links_the_plan_page_and_pdf(app, client, db, outbox, clock):
    sign_up_and_confirm(client, outbox, "mail@example.com")
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    first = [m for m in outbox.to("mail@example.com") if "Part 1" in m["Subject"]]
    assert first, [m["Subject"] for m in outbox.to("mail@example.com")]
    text = outbox.text(first[0])
    page_path = re.search(r"https?://[^/\s]+(/plan/[A-Za-z0-9._\-]+)\)", text).group(1)
    pdf_path = re.search(r"https?://[^/\s]+(/plan/[A-Za-z0-9._\-]+\.pdf)", text).group(1)
    assert client.get(page_path).status_code == 200
    assert client.get(pdf_path).status_code == 200


def test_preference_page_links_the_plan(client, db, outbox):
    sign_up_and_confirm(client, outbox, "prefs@example.com")
    msg = outbox.to("prefs@example.com")[0]
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "prefs@example.com"))
    rt = client.application.extensions["funnel"]
    prefs = client.get(rt.composer.links.preferences(sub.public_id).replace("http://localhost", ""))
    assert prefs.status_code == 200
    assert client.get(plan_path(prefs.get_data(as_text=True))).status_code == 200
    assert msg is not None


@pytest.mark.parametrize("path, status", [
    ("/plan/not-a-token", 400),
    ("/plan/not-a-token.pdf", 400),
    ("/plan/", 404),
    ("/plan", 404),
])
def test_strangers_get_nothing(client, db, path, status):
    resp = client.get(path)
    assert resp.status_code == status
    assert "Week 1" not in resp.get_data(as_text=True)


def test_other_links_and_unconfirmed_people_are_refused(client, db, outbox):
    sign_up(client, "pending@example.com")
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "pending@example.com"))
    links = client.application.extensions["funnel"].composer.links
    # A pending subscriber's own plan link: refused until they confirm.
    pending = links.plan(sub.public_id).replace("http://localhost", "")
    resp = client.get(pending)
    assert resp.status_code == 403 and "confirm" in resp.get_data(as_text=True)
    assert client.get(pending + ".pdf").status_code == 403
    # A link signed for another purpose never opens the plan.
    prefs_token = links.preferences(sub.public_id).rsplit("/", 1)[1]
    assert client.get(f"/plan/{prefs_token}").status_code == 400
    # A good signature for someone who no longer exists: the same 404 as erased data.
    ghost = links.plan("no-such-person").replace("http://localhost", "")
    assert client.get(ghost).status_code == 404
    assert client.get(ghost + ".pdf").status_code == 404
