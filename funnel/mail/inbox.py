"""What the inbox does to a rendered email, checked by ``emails check``: Gmail clips
an HTML body over 102 KB (hiding the unsubscribe link at the bottom), a picture
without alt text shows as nothing when pictures are off, and a reader of the plain
text part must be able to reach every link the HTML offers."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import unquote

HTML_MAX_BYTES = 100 * 1024  # Gmail clips at about 102 KB; keep a margin


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.pictures_without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and (a.get("href") or "").startswith(("http://", "https://")):
            self.links.append(a["href"] or "")
        elif tag == "img" and not (a.get("alt") or "").strip() and a.get("role") != "presentation":
            self.pictures_without_alt.append(a.get("src") or "?")


def inbox_problems(html: str, text: str) -> list[str]:
    """Warnings, in words for the marketer, about one rendered email."""
    out = []
    size = len(html.encode("utf-8"))
    if size > HTML_MAX_BYTES:
        out.append(f"the HTML is {size // 1024} KB: Gmail clips emails over about 102 KB and "
                   "hides the rest, unsubscribe link included; shorten it")
    scan = _Scan()
    scan.feed(html)
    for src in dict.fromkeys(scan.pictures_without_alt):
        out.append(f"a picture ({src[:80]}) has no alt text: readers with pictures off see "
                   "nothing in its place")
    plain = unquote(text)
    missing = [href for href in dict.fromkeys(scan.links)
               if href not in text and unquote(href) not in plain]
    if missing:
        shown = ", ".join(m[:80] for m in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        out.append(f"the plain-text part leaves out {len(missing)} link(s) the HTML has "
                   f"({shown}{more}): text-only readers cannot follow them")
    return out
