"""OAuth2 authorization server (authlib): client_credentials tokens for apps."""

from __future__ import annotations

import json

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from flask import Blueprint

from thingbridge.db import utcnow
from thingbridge.models import ALL_SCOPES, AccessToken, App, token_hash


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    # Accept credentials in HTTP Basic (preferred) or in the form body.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def _query_client(client_id):
    return App.get_or_none(App.client_id == client_id)


def _save_token(token, request):
    AccessToken.create(token_hash=token_hash(token["access_token"]), app=request.client,
                       scope=token.get("scope", ""), expires_in=token["expires_in"],
                       created_at=utcnow())


server = AuthorizationServer(query_client=_query_client, save_token=_save_token)

bp = Blueprint("oauth2", __name__)


@bp.post("/oauth2/token")
def issue_token():
    """Issue a bearer token (grant_type=client_credentials, HTTP Basic or form credentials)."""
    response = server.create_token_response()
    if response.status_code >= 400:
        # Keep the OAuth2 fields clients parse, plus the platform's standard error body.
        body = json.loads(response.get_data(as_text=True) or "{}")
        body.update(status=response.status_code,
                    description=body.get("error_description") or body.get("error", "error"))
        response.set_data(json.dumps(body))
    return response


def init_app(app) -> None:
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(ALL_SCOPES))
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN",
                          {"client_credentials": app.config["TOKEN_EXPIRES_IN"]})
    server.init_app(app)
    server.register_grant(ClientCredentialsGrant)
    app.register_blueprint(bp)
