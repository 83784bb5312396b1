"""Run Stronger funnel: article → landing page → double opt-in → drip sequence."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from funnel import config as cfg


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: defaults, then the environment, then ``config``."""
    # INSTANCE_PATH (from the caller only) lets tests keep instance/ files apart.
    app = Flask(
        __name__,
        instance_path=(config or {}).get("INSTANCE_PATH"),
        instance_relative_config=True,
        template_folder=str(cfg.PROJECT_ROOT / "templates"),
        static_folder=None,
    )
    app.config.update(cfg.defaults(app.instance_path))
    app.config.update(cfg.from_environment(os.environ))
    if config:
        app.config.update(config)
    if (not os.environ.get("FUNNEL_BASE_URL") and "FUNNEL_BASE_URL" not in (config or {})
            and not cfg.is_production(app.config)):
        # The address `flask serve` (make run) last recorded: one for every process.
        from funnel.operations import base_url

        served = base_url.recorded(app.instance_path)
        if served:
            app.config["FUNNEL_BASE_URL"] = served
    from funnel.core.inputs import use_fast_address_check

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
    from funnel.api import problems as api_problems
    from funnel.api import routes as api_routes
    from funnel.http import extensions, ratelimits
    from funnel.studio.emails_dir import ensure_emails_dir
    from funnel.web import errors, headers, nul_guard, ops, webhooks
    from funnel.web.admin import (
        auth,
        broadcast_studio,
        broadcasts,
        previews,
        roles,
        sending,
        team,
        test_sends,
    )
    from funnel.web.admin import automation as admin_automation
    from funnel.web.admin import connect as connect_admin
    from funnel.web.admin import dashboard as admin
    from funnel.web.admin import editor as admin_editor
    from funnel.web.admin import imports as admin_import
    from funnel.web.admin import people as _admin_people  # noqa: F401  (its pages join admin.bp)
    from funnel.web.admin import session_list as admin_sessions
    from funnel.web.admin import subscriber as admin_subscriber
    from funnel.web.admin import tags as admin_tags
    from funnel.web.admin import two_factor as two_factor_pages
    from funnel.web.public import embed, fastpages, fastsignup, newsletter, site
    from funnel.web.public import signup as _signup  # noqa: F401  (its view joins site.bp)
    from funnel.web.subscriber import fresh_links, links, plan, preferences

    # A production EMAILS_DIR outside the code starts as a copy of the shipped emails.
    # After an upgrade it gains the shipped files it lacks (never over the coach's).
    emails_report = ensure_emails_dir(app.config["EMAILS_DIR"], cfg.PROJECT_ROOT / "emails")
    runtime.init_app(app)
    extensions.init_app(app)
    # The article and landing page from the page cache without Flask's request
    # handling; wrapped before ProxyFix so it sees the client and host ProxyFix sets.
    fastpages.init_app(app)
    # The plain sign-up POST, the same way (funnel/web/public/fastsignup.py).
    fastsignup.init_app(app)
    headers.init_app(app)
    ratelimits.init_app(app)
    errors.init_app(app, elsewhere={"/api/": api_problems.from_status})
    nul_guard.init_app(app)
    # One blueprint per audience: visitors, subscribers' links, providers, the marketer.
    site.init_app(app)
    app.register_blueprint(site.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(preferences.bp)
    app.register_blueprint(fresh_links.bp)
    app.register_blueprint(newsletter.bp)
    app.register_blueprint(webhooks.bp)
    plan.init_app(app)
    auth.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(previews.bp)
    app.register_blueprint(admin_editor.bp)
    app.register_blueprint(admin_subscriber.bp)
    app.register_blueprint(admin_sessions.bp)
    app.register_blueprint(two_factor_pages.bp)
    app.register_blueprint(admin_tags.bp)
    app.register_blueprint(admin_automation.bp)
    app.register_blueprint(admin_import.bp)
    app.register_blueprint(connect_admin.bp)
    # Other sites and tools: the embedded sign-up form and the JSON API.
    app.register_blueprint(embed.bp)
    app.register_blueprint(api_routes.bp)
    app.register_blueprint(broadcasts.bp)
    app.register_blueprint(sending.bp)
    # The coach's studio: new newsletters, test sends, moving a schedule; the team.
    app.register_blueprint(broadcast_studio.bp)
    app.register_blueprint(test_sends.bp)
    app.register_blueprint(team.bp)
    roles.init_app(app)
    cli.init_app(app)
    ops.init_app(app)
    emails_report.log(cfg.PROJECT_ROOT / "emails")  # now that the logs have their format
    return app
