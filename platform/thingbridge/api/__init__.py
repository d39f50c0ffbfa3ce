"""Registers every resource blueprint, the OpenAPI document and the docs UI."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask_swagger_ui import get_swaggerui_blueprint

from thingbridge.api import (
    actions,
    bodies,
    clients,
    connector_actions,
    descriptions,
    events,
    health,
    instances,
    oauth_callback,
    things,
    webhooks,
)
from thingbridge.api.common import AsciiIntegerConverter, KeyConverter
from thingbridge.api.error_body import Api
from thingbridge.auth import server as auth_server
from thingbridge.observability.exposition import METRICS_OPERATION

BLUEPRINTS = [descriptions.blp, instances.blp, clients.blp, oauth_callback.blp,
              connector_actions.blp, things.blp, actions.blp, events.blp, webhooks.blp,
              health.blp, auth_server.blp]


def init_app(app) -> None:
    app.config.update(
        API_TITLE="Thingbridge", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "connctd-compatible connector, things and actions API. "
                                    "Get a token at POST /oauth2/token (client_credentials)."},
            "components": {"securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "POST /oauth2/token, grant_type=client_credentials, scopes "
                               "connctd.connector connctd.things.read connctd.things.action "
                               "thingbridge.events"},
                "clientBasic": {"type": "http", "scheme": "basic",
                                "description": "The app's client_id and client_secret"}}},
        },
    )
    app.url_map.converters["key"] = KeyConverter
    app.url_map.converters["int"] = AsciiIntegerConverter  # the console's routes too
    app.before_request(bodies.read_whole)
    app.after_request(_redirect_within_host)
    api = Api(app)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    # Served outside the blueprints (observability); described here all the same.
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "metrics")
    api.spec.path(rule=rule, operations=METRICS_OPERATION)
    # Swagger UI assets ship inside the package: the docs page works offline.
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json",
                                                   config={"app_name": "Thingbridge API"}))


def _redirect_within_host(response):
    """werkzeug's slash redirects (``/docs`` to ``/docs/``, 308) say only the path: they wrote
    the ``Host`` the client sent into ``Location``, so a cache or proxy keeping the answer
    would send others to a host anyone can name."""
    if response.status_code == 308 and "Location" in response.headers:
        # Whatever host it names (an IDNA one is written otherwise than request.host_url):
        # werkzeug's slash redirects never leave the host.
        parts = urlsplit(response.headers["Location"])
        response.headers["Location"] = urlunsplit(("", "", "/" + parts.path.lstrip("/"),
                                                   parts.query, ""))
    return response
