"""The public archive: a broadcast rendered for nobody in particular, and its Atom feed.

What a reader sees at /newsletter/SLUG is the frozen copy that was sent, with
every personal value replaced ("Hi there", no tokens, no address), so sharing
the page shares nothing about anyone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from funnel.core.sequence import EmailSource
from funnel.mail.compose import PERSONAL_VARIABLES

ATOM = "http://www.w3.org/2005/Atom"


def public_variables(base_url: str, page_url: str, postal_address: str) -> dict[str, Any]:
    """The template variables with nothing personal in them.

    Links that only make sense for one reader (unsubscribe, preferences, confirm)
    lead to the sign-up page instead: on the web, the next step is to subscribe.
    """
    base = base_url.rstrip("/")
    signup = base + "/free-plan"
    public = {
        "first_name": "there",
        "email": "you",
        "site_url": base + "/",
        "article_url": base + "/",
        "plan_url": signup,
        "unsubscribe_url": signup,
        "preferences_url": signup,
        "confirm_url": signup,
        # A reader's own plan: on the web, the way to one is to sign up.
        "my_plan_url": signup,
        "my_plan_pdf_url": signup,
        "view_url": page_url,
        "postal_address": postal_address,
        "reason": "",
        "next_step": "",
    }
    # Every personal variable an email may use has a public form here; a new one
    # without it fails loudly in the tests rather than on the archive page.
    missing = set(PERSONAL_VARIABLES) - set(public)
    assert not missing, f"no public form for {sorted(missing)}"
    return public


@dataclass(frozen=True)
class PublicIssue:
    slug: str
    subject: str
    preheader: str
    html: str  # the body only; the site's page supplies the frame
    published: datetime


_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                            keep_trailing_newline=True)


def render_public(source: EmailSource, variables: dict[str, Any], published: datetime,
                  render_body: Callable[[EmailSource, dict[str, Any]], str]) -> PublicIssue:
    """The issue's subject and body HTML for the web (raw HTML in Markdown stays text).
    ``render_body`` is the emails' own renderer (Renderer.render_body), so pictures
    get the same served addresses as in the email that went out."""
    subject = _env.from_string(source.subject).render(variables).strip()
    preheader = _env.from_string(source.preheader).render(variables).strip()
    body = render_body(source, variables)
    return PublicIssue(source.slug, subject, preheader, body, published)


def atom_feed(issues: Iterable[PublicIssue], *, base_url: str, feed_url: str,
              updated: datetime, title: str = "Run Stronger newsletter") -> bytes:
    """A valid Atom 1.0 document (RFC 4287): ids, titles, dates, links and full content."""
    ET.register_namespace("", ATOM)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    base = base_url.rstrip("/")
    feed = ET.Element(f"{{{ATOM}}}feed")
    issues = list(issues)
    el(feed, "id", feed_url)
    el(feed, "title", title)
    el(feed, "subtitle", "Strength and mobility for runners, every few weeks.")
    newest = max((i.published for i in issues), default=updated)
    el(feed, "updated", newest.isoformat())
    el(feed, "link", rel="self", href=feed_url, type="application/atom+xml")
    el(feed, "link", rel="alternate", href=base + "/newsletter", type="text/html")
    author = el(feed, "author")
    el(author, "name", "Run Stronger")
    for issue in issues:
        url = f"{base}/newsletter/{issue.slug}"
        entry = el(feed, "entry")
        el(entry, "id", url)
        el(entry, "title", issue.subject)
        el(entry, "updated", issue.published.isoformat())
        el(entry, "published", issue.published.isoformat())
        el(entry, "link", rel="alternate", href=url, type="text/html")
        if issue.preheader:
            el(entry, "summary", issue.preheader)
        signup = f'<p><a href="{base}/free-plan">Get the free plan and the newsletter</a></p>'
        el(entry, "content", issue.html + signup, type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
