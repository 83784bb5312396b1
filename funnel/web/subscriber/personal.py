"""Pieces shared by the pages reached through a personal link (email links, preferences)."""

from __future__ import annotations

from flask import request

from funnel import runtime
from funnel.models import Subscriber
from funnel.subscribers import actions as subscribers
from funnel.web.errors import render_error

# No cache may keep a page reached by a personal link, and no search engine list it.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def request_meta() -> subscribers.SignupMeta:
    return subscribers.SignupMeta(ip=request.remote_addr, user_agent=request.user_agent.string)


def invalid_link():
    return render_error(
        400, "This link isn't valid. It may have been cut short when it was copied: "
        "try opening it straight from the email.")


def try_confirmation(sub: Subscriber, claimed: bool = False) -> None:
    """Queue a confirmation email for the worker (never sent inside the request)
    and wake an embedded worker. ``claimed``: subscribers.subscribe already queued it."""
    if claimed or subscribers.request_confirmation(runtime.session(), sub, runtime.now()):
        runtime.rt().wake.set()
