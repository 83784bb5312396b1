"""Run Stronger funnel: article → landing page → double opt-in → drip sequence."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from funnel import config as cfg


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: defaults, then the environment, then ``config``."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(cfg.PROJECT_ROOT / "templates"),
        static_folder=None,
    )
    from funnel.operations import wiring as ops

    app.config.update(cfg.defaults(app.instance_path))
    app.config.update(ops.from_environment(os.environ))
    app.config.update(cfg.from_environment(os.environ))
    if config:
        app.config.update(config)
    from funnel.inputs import use_fast_address_check

    use_fast_address_check(app.config.get("FAST_ADDRESS_CHECK", True))
    if not app.config.get("SECRET_KEY"):
        if cfg.is_production(app.config):
            raise cfg.ConfigError("SECRET_KEY must be set in production (FUNNEL_ENV=production).")
        app.config["SECRET_KEY"] = cfg.development_secret(app.instance_path)
    if cfg.is_production(app.config):
        from funnel.operations import production

        problems = production.problems(app.config)
        if problems:
            raise cfg.ConfigError("Refusing to start in production (FUNNEL_ENV=production):\n- "
                                  + "\n- ".join(problems))

    # Imported here, not at the top: importing the package must not pull in the web
    # layer (the worker and the CLI import funnel.* too).
    from funnel import cli, runtime
    from funnel.api import routes as api_routes
    from funnel.web import (
        admin,
        admin_import,
        admin_subscriber,
        auth,
        broadcasts,
        connect_admin,
        embed,
        errors,
        extensions,
        fastpages,
        headers,
        links,
        newsletter,
        plan,
        preferences,
        previews,
        ratelimits,
        site,
        webhooks,
    )

    runtime.init_app(app)
    extensions.init_app(app)
    # The article and landing page from the page cache without Flask's request
    # handling; wrapped before ProxyFix so it sees the client and host ProxyFix sets.
    fastpages.init_app(app)
    headers.init_app(app)
    ratelimits.init_app(app)
    errors.init_app(app)
    # One blueprint per audience: visitors, subscribers' links, providers, the marketer.
    site.init_app(app)
    app.register_blueprint(site.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(preferences.bp)
    app.register_blueprint(newsletter.bp)
    app.register_blueprint(webhooks.bp)
    plan.init_app(app)
    auth.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(previews.bp)
    app.register_blueprint(admin_subscriber.bp)
    app.register_blueprint(admin_import.bp)
    app.register_blueprint(connect_admin.bp)
    # Other sites and tools: the embedded sign-up form and the JSON API.
    app.register_blueprint(embed.bp)
    app.register_blueprint(api_routes.bp)
    app.register_blueprint(broadcasts.bp)
    cli.init_app(app)
    ops.init_app(app)
    return app
