"""The suite makes a new app for nearly every test, and werkzeug compiles a URL
builder for each of the app's ~110 routes each time: about 80 ms an app, over 100 s
of CPU in a run. A builder depends only on the rule's text, its parts and its
defaults, so the suite compiles each one once. Test-only: production makes one app
per process. ``tests/test_routing_cache.py`` checks that every route's cached
builder is the very code werkzeug compiles for it."""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.routing import Rule

_made: dict[tuple, Callable] = {}
PLAIN: Callable | None = getattr(Rule, "_compile_builder", None)


def key(rule: Rule, append_unknown: bool) -> tuple:
    defaults = rule.defaults or {}
    # A default that appears in the rule is turned into text by its converter.
    converters = tuple(sorted((name, type(conv).__name__, repr(sorted(vars(conv).items(), key=str)))
                              for name, conv in rule._converters.items() if name in defaults))
    return (rule.rule, tuple(rule._trace), tuple(sorted((k, repr(v)) for k, v in defaults.items())),
            converters, append_unknown)


def _cached(self: Rule, append_unknown: bool = True) -> Callable:
    k = key(self, append_unknown)
    builder = _made.get(k)
    if builder is None:
        assert PLAIN is not None
        builder = _made[k] = PLAIN(self, append_unknown)
    return builder


def install() -> None:
    if PLAIN is not None:  # a werkzeug without it compiles as it likes
        Rule._compile_builder = _cached  # type: ignore[method-assign]


def uninstall() -> None:
    if PLAIN is not None:
        Rule._compile_builder = PLAIN  # type: ignore[method-assign]
