"""Thingbridge: an open IoT connector platform with a connctd-compatible REST API."""

from __future__ import annotations

from flask import Flask

__all__ = ["create_app"]


def create_app(overrides: dict | None = None, serve_http: bool = True) -> Flask:
    """The platform's Flask app. Workers and beat pass ``serve_http=False``: they get the
    settings, database, connectors and Celery, but not the API, its OpenAPI machinery, the
    OAuth server or the console, which they never use and which would only take memory."""
    from thingbridge import crypto, observability, tasks
    from thingbridge import db as database
    from thingbridge.config import load_settings
    from thingbridge.connectors import registry

    app = Flask("thingbridge")
    # An empty segment (`//`, or `%2F` decoded) is a path no route has: 404, not werkzeug's
    # HTML redirect to a different resource (a DELETE followed there acts on something else).
    app.url_map.merge_slashes = False
    app.config.update(load_settings(overrides))
    observability.init_app(app)  # first: its hooks time and name every request

    crypto.configure(app.config["SECRET_KEYS"])
    database.open_database(app.config["DATABASE_URL"], app.config["DATABASE_POOL_SIZE"],
                           app.config["DATABASE_CONNECT_TIMEOUT"],
                           app.config["DATABASE_APPLICATION_NAME"],
                           app.config["DATABASE_STATEMENT_TIMEOUT"])
    database.init_app(app)
    registry.init_app(app)
    tasks.celery_init_app(app)
    if serve_http:
        from thingbridge import api, console
        from thingbridge.api.json_provider import JSONProvider
        from thingbridge.auth import server as auth_server

        app.json = JSONProvider(app)
        auth_server.init_app(app)
        api.init_app(app)  # its Api answers every error in the standard body
        console.init_app(app)

    return app
