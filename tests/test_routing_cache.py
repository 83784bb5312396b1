"""The suite's cache of URL builders (tests/routing_cache.py) gives every route of
the app the code werkzeug itself compiles for it, so no page's links differ."""

from __future__ import annotations

from tests import routing_cache


def _same(a, b) -> bool:
    ca, cb = a.__code__, b.__code__
    return (ca.co_code, ca.co_consts, ca.co_varnames, ca.co_names, a.__defaults__) == \
           (cb.co_code, cb.co_consts, cb.co_varnames, cb.co_names, b.__defaults__)


def test_every_cached_builder_is_what_werkzeug_compiles(app):
    assert routing_cache.PLAIN is not None
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 50
    for rule in rules:
        for unknown in (False, True):
            cached = routing_cache._made[routing_cache.key(rule, unknown)]
            assert _same(cached, routing_cache.PLAIN(rule, unknown)), rule.rule


def test_two_apps_build_the_same_links(app, app_config):
    from flask import url_for

    from funnel import create_app

    routing_cache.uninstall()
    try:
        plain_app = create_app(app_config)
    finally:
        routing_cache.install()
    for rule in app.url_map.iter_rules():
        if rule.arguments or "GET" not in (rule.methods or ()):
            continue
        with app.test_request_context():
            ours = url_for(rule.endpoint, _external=True)
        with plain_app.test_request_context():
            theirs = url_for(rule.endpoint, _external=True)
        assert ours == theirs
    plain_app.extensions["funnel"].engine.dispose()
