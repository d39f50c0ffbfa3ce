"""Thingbridge: an open IoT connector platform with a connctd-compatible REST API."""

from __future__ import annotations

from flask import Flask

__all__ = ["create_app"]


def create_app(overrides: dict | None = None) -> Flask:
    from thingbridge import api, console, crypto, observability, tasks
    from thingbridge import db as database
    from thingbridge.auth import server as auth_server
    from thingbridge.config import load_settings
    from thingbridge.connectors import registry

    app = Flask("thingbridge")
    app.config.update(load_settings(overrides))
    observability.init_app(app)  # first: its hooks time and name every request

    crypto.configure(app.config["SECRET_KEYS"])
    database.open_database(app.config["DATABASE_URL"])
    registry.init_app(app)
    tasks.celery_init_app(app)
    auth_server.init_app(app)
    api.init_app(app)  # its Api answers every error in the standard body
    console.init_app(app)

    @app.before_request
    def _connect():
        database.db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if not database.db.is_closed():
            database.db.close()

    return app
