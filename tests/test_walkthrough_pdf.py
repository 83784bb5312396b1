"""Issue 24, item 6: the plan's PDF reads as one document: numbered steps carry on
past a drawing, every week's heading sits with its first part, and the PDF holds no
links to the plan or to itself."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from tests.artefacts import artefact_dir
from tests.conftest import sign_up_and_confirm

PLAN_LINK = re.compile(r'href="(/plan/[A-Za-z0-9._\-]+)"')


@pytest.fixture
def plan_pdf(client, outbox):
    welcome = sign_up_and_confirm(client, outbox, "reader@example.com", "Robin")
    path = PLAN_LINK.search(welcome.get_data(as_text=True)).group(1)
    pdf = client.get(path + ".pdf")
    assert pdf.status_code == 200
    (artefact_dir() / "walkthrough-plan.pdf").write_bytes(pdf.data)
    reader = PdfReader(io.BytesIO(pdf.data))
    pages = [" ".join((p.extract_text() or "").split()) for p in reader.pages]
    return reader, pages


def list_numbers(page: str) -> list[int]:
    """A page's list numbers: pypdf gives the markers after the page's text, in
    order, just before the footer."""
    m = re.search(r"((?:\d+\.\s+)+)Run Stronger free plan · page", page)
    return [int(n) for n in re.findall(r"\d+", m.group(1))] if m else []


def test_numbered_steps_carry_on_after_a_drawing(plan_pdf):
    _reader, pages = plan_pdf
    first = next(i for i, p in enumerate(pages) if "Start on hands and knees" in p)
    last = next(i for i, p in enumerate(pages) if "Come out and swap" in p)
    # Part 1's six steps, split by two drawings, numbered 1 to 6 (not 1-3, 1-2, 1).
    numbers = [n for p in pages[first:last + 1] for n in list_numbers(p)]
    assert numbers == [1, 2, 3, 4, 5, 6], numbers


def test_each_week_heading_is_on_the_page_of_its_first_part(plan_pdf):
    _reader, pages = plan_pdf
    for week in range(1, 7):
        [page] = [p for p in pages if re.search(rf"\bWeek {week}\b(?! of)", p)
                  and "Part " in p.split(f"Week {week}", 1)[1]] or [None]
        assert page is not None, f"'Week {week}' is not followed by its first part on its page"


def test_the_pdf_links_neither_to_the_plan_nor_to_itself(plan_pdf):
    reader, pages = plan_pdf
    text = " ".join(pages)
    assert "Your whole plan on one page" not in text
    assert "The same plan as a PDF" not in text
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            uri = (annot.get_object().get("/A") or {}).get("/URI", "")
            assert "/plan/" not in str(uri), uri
