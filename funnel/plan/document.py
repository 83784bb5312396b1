"""The whole plan as one document: every email of the sequence, grouped by the
week it arrives in, for the printable page and its PDF.

Flask-free. Both are made from the same Markdown the emails are: each step's body
goes through the same renderer, with pictures as SVG (sharp in print) instead of
the PNGs mail needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from funnel.core.sequence import Sequence
from funnel.plan.media import MEDIA_PREFIX, MediaLibrary

_GREETING = re.compile(r"\A\s*<h1>.*?</h1>\s*<p>Hi [^<]*,</p>\s*", re.DOTALL)
_H1 = re.compile(r"<h1>(.*?)</h1>", re.DOTALL)
_OL_START = re.compile(r'<ol start="(\d+)">')
_LIST = re.compile(r"(?:<p>[^<]*(?:<(?!/?p>)[^<]*)*:</p>\s*)?<ul>\s*(?P<items>(?:<li>.*?</li>\s*)+)</ul>\s*",
                   re.DOTALL)
_EXERCISE = re.compile(r"^\d+\.\s+\*\*(?P<name>[^*]+?)[.:]?\*\*", re.MULTILINE)


@dataclass(frozen=True)
class Section:
    slug: str
    part: int
    title: str
    day: int
    html: str  # the body, without its title and greeting


@dataclass
class Week:
    number: int
    sections: list[Section] = field(default_factory=list)


def exercise_names(markdown: str) -> list[str]:
    """The exercises of one email: numbered items that start with a bold name."""
    return [m["name"].strip() for m in _EXERCISE.finditer(markdown)]


def build_weeks(
    sequence: Sequence,
    render_body: Callable[[Any, Mapping[str, Any]], str],
    variables: Mapping[str, Any],
) -> list[Week]:
    """Each step rendered to HTML, in order, under the week it arrives in when
    every email goes out on time (day 1 is the day of confirming)."""
    weeks: dict[int, Week] = {}
    offset = timedelta(0)
    for part, step in enumerate(sequence, 1):
        offset += step.delay
        html = render_body(step.source, variables)
        title_match = _H1.search(html)
        title = title_match.group(1).strip() if title_match else step.subject
        body = _GREETING.sub("", html, count=1)
        if body == html and title_match:
            body = html.replace(title_match.group(0), "", 1)
        # The page puts each email under an h3, so its own h2s become h4s.
        body = re.sub(r"<(/?)h2>", r"<\1h4>", body)
        body = _without_links_to(body, _plan_links(variables))
        body = _numbering_carries_on(body)
        number = offset.days // 7 + 1
        weeks.setdefault(number, Week(number)).sections.append(
            Section(step.slug, part, title, offset.days + 1, body))
    return [weeks[n] for n in sorted(weeks)]


def _plan_links(variables: Mapping[str, Any]) -> set[str]:
    return {str(variables[k]) for k in ("my_plan_url", "my_plan_pdf_url") if variables.get(k)}


def _without_links_to(html: str, urls: set[str]) -> str:
    """The plan is the document those links open: a list of nothing but links to it
    (and the sentence that leads into it) has no place in it."""
    if not urls:
        return html

    def drop(m: re.Match[str]) -> str:
        items = re.findall(r"<li>(.*?)</li>", m["items"], re.DOTALL)
        links = [re.fullmatch(r'\s*<a href="([^"]*)">[^<]*</a>\s*', item) for item in items]
        only_self = all(link is not None and link[1] in urls for link in links)
        return "" if only_self else m.group(0)

    return _LIST.sub(drop, html)


def _numbering_carries_on(html: str) -> str:
    """A list Markdown continues after a picture (``4.``) starts at its number in
    WeasyPrint too, which reads the list-item counter rather than ``start``."""
    return _OL_START.sub(lambda m: (f'<ol start="{m[1]}" '
                                    f'style="counter-reset:list-item {int(m[1]) - 1}">'), html)


def pdf_bytes(html: str, *, base_url: str, media: MediaLibrary) -> bytes:
    """The printable page as a PDF (WeasyPrint). Pictures come straight from the
    media folder; nothing else is fetched, so a PDF never reaches the network."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    base = base_url.rstrip("/")

    class LocalFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            if url.startswith(base + MEDIA_PREFIX):
                served = media.serve(url[len(base + MEDIA_PREFIX):])
                if served is not None:
                    return URLFetcherResponse(url, body=served.body,
                                              headers={"Content-Type": served.content_type})
            raise ValueError(f"not fetched for the PDF: {url}")

    return HTML(string=html, base_url=base + "/", url_fetcher=LocalFetcher()).write_pdf()
