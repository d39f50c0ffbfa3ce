"""Registers every resource blueprint, the OpenAPI document and the docs UI."""

from __future__ import annotations

from flask_smorest import Api
from flask_swagger_ui import get_swaggerui_blueprint

from thingbridge.api import (
    actions,
    clients,
    connector_service,
    descriptions,
    health,
    instances,
    things,
)

BLUEPRINTS = [descriptions.blp, instances.blp, clients.blp, connector_service.blp, things.blp,
              actions.blp, health.blp]


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
                               "connctd.connector connctd.things.read connctd.things.action"}}},
        },
    )
    api = Api(app)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    # Swagger UI assets ship inside the package: the docs page works offline.
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json",
                                                   config={"app_name": "Thingbridge API"}))
