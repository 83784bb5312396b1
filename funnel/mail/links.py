"""Absolute links to the subscriber pages, built without a request.

The web blueprint registers the same paths (``PATHS``), so emails and routes
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from funnel.core.tokens import Tokens

PATHS = {
    "confirm": "/confirm/<token>",
    "unsubscribe": "/unsubscribe/<token>",
    "preferences": "/preferences/<token>",
    "view": "/view/<token>",
    "plan": "/plan/<token>",
}


class Links:
    def __init__(self, base_url: str, tokens: Tokens) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens

    def _url(self, purpose: str, payload: object) -> str:
        return self.maker(purpose)(payload)

    def maker(self, purpose: str) -> Callable[[object], str]:
        """The links of one purpose for a batch of recipients, signed at one moment."""
        make = self.tokens.maker(purpose)
        before, _token, after = PATHS[purpose].partition("<token>")
        before = self.base_url + before
        return lambda payload: before + make(payload) + after

    def confirm(self, public_id: str) -> str:
        return self._url("confirm", public_id)

    def unsubscribe(self, public_id: str) -> str:
        return self._url("unsubscribe", public_id)

    def preferences(self, public_id: str) -> str:
        return self._url("preferences", public_id)

    def view(self, public_id: str, delivery_id: str) -> str:
        return self._url("view", [public_id, delivery_id])

    def plan(self, public_id: str) -> str:
        """The reader's printable plan; add ``.pdf`` for the PDF."""
        return self._url("plan", public_id)

    def page(self, path: str) -> str:
        return self.base_url + path
