"""Registers every resource blueprint, the OpenAPI document and the docs UI."""

from __future__ import annotations

from flask_swagger_ui import get_swaggerui_blueprint

from thingbridge.api import (
    actions,
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
from thingbridge.errors import Api
from thingbridge.observability.exposition import METRICS_OPERATION

BLUEPRINTS = [descriptions.blp, instances.blp, clients.blp, oauth_callback.blp,
              connector_actions.blp, things.blp, actions.blp, events.blp, webhooks.blp,
              health.blp]


# authlib serves the token endpoint; it is described here so the document covers every route.
TOKEN_OPERATION = {"post": {
    "tags": ["oauth2"], "summary": "Issue an app bearer token (client_credentials)",
    "description": "Client credentials in HTTP Basic (preferred) or the form body. `scope` is a "
                   "space-separated subset of the app's scopes; omitted means all of them.",
    "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "required": ["grant_type"], "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "scope": {"type": "string", "example": "connctd.connector connctd.things.read"},
            "client_id": {"type": "string"}, "client_secret": {"type": "string"}}}}}},
    "responses": {
        "200": {"description": "`{access_token, token_type: Bearer, expires_in, scope}`"},
        "400": {"description": "invalid_request / invalid_scope / unsupported_grant_type, "
                               "with status and description"},
        "401": {"description": "invalid_client"}},
}}


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
                               "thingbridge.events"}}},
        },
    )
    api = Api(app)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    # Served outside the blueprints (authlib, observability); described here all the same.
    for endpoint, operations in (("oauth2.issue_token", TOKEN_OPERATION),
                                 ("metrics", METRICS_OPERATION)):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        api.spec.path(rule=rule, operations=operations)
    # Swagger UI assets ship inside the package: the docs page works offline.
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json",
                                                   config={"app_name": "Thingbridge API"}))
