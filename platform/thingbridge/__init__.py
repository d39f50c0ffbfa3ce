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
    database.open_database(app.config["DATABASE_URL"], app.config["DATABASE_POOL_SIZE"],
                           app.config["DATABASE_CONNECT_TIMEOUT"],
                           app.config["DATABASE_APPLICATION_NAME"])
    database.init_app(app)
    registry.init_app(app)
    tasks.celery_init_app(app)
    auth_server.init_app(app)
    api.init_app(app)  # its Api answers every error in the standard body
    console.init_app(app)

    return app
