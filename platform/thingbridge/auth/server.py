"""OAuth2 authorization server (authlib): client_credentials tokens for apps, and their
revocation (RFC 7009). Errors keep the OAuth2 fields clients parse (``error``,
``error_description``) and add the platform's ``status`` and ``description``."""

from __future__ import annotations

import json

import flask_smorest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from flask import jsonify, request

from thingbridge.auth import credentials, token_cache
from thingbridge.db import utcnow
from thingbridge.models import ALL_SCOPES, AccessToken, token_hash
from thingbridge.schemas.auth import OAuthErrorSchema, TokenOut
from thingbridge.schemas.common import unstorable

CLIENT_AUTH = ["client_secret_basic", "client_secret_post"]


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    # Accept credentials in HTTP Basic (preferred) or in the form body.
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH

    def validate_requested_scope(self):
        """invalid_scope (RFC 6749 5.2) for a scope that does not exist, and for a request
        the app holds none of: that token could do nothing. A request the app holds part of
        gets that part, and the answer's ``scope`` says which."""
        super().validate_requested_scope()
        asked = self.request.payload.scope
        if asked and not self.request.client.get_allowed_scope(asked):
            raise InvalidScopeError(description="this app holds none of the scopes asked for")


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def check_params(self, request, client):
        # RFC 7009 2.1: a token type hint the server does not know is ignored (authlib
        # answered it 401 unsupported_token_type); only access tokens exist here.
        if "token" not in request.form:
            raise InvalidRequestError()

    def query_token(self, token_string, token_type_hint):
        return AccessToken.get_or_none(AccessToken.token_hash == token_hash(token_string))

    def revoke_token(self, token, request):
        AccessToken.update(revoked=True).where(AccessToken.id == token.id).execute()
        token_cache.forget(token)


def _save_token(token, request):
    AccessToken.create(token_hash=token_hash(token["access_token"]), app=request.client,
                       scope=token.get("scope", ""), expires_in=token["expires_in"],
                       created_at=utcnow())


# The client lookup spends the id's count of secret checks, on the id authlib itself read
# (HTTP Basic's name percent-decoded, then the form's): read any other way, a guess at one
# app's secret could spend another id's count, or none.
server = AuthorizationServer(query_client=credentials.signing_in, save_token=_save_token)
server.register_grant(ClientCredentialsGrant)
server.register_endpoint(Revocation)

blp = flask_smorest.Blueprint("oauth2", __name__, url_prefix="/oauth2",
                              description="App tokens: issue (client_credentials) and revoke")


# The longest form value either endpoint takes: a longer one is a 400 before authlib reads it.
FORM_LIMITS = {"client_id": 64, "client_secret": 255, "scope": 500, "token": 500,
               "grant_type": 100, "token_type_hint": 100}


def _form(required: list[str], **properties) -> dict:
    properties.update(client_id={"type": "string"}, client_secret={"type": "string"})
    for name, schema in properties.items():
        schema.setdefault("maxLength", FORM_LIMITS[name])
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


CLIENT_SECURITY = [{"clientBasic": []}, {}]  # HTTP Basic, or client_id/secret in the form
ERRORS = {code: {"description": text, "content": {"application/json": {
    "schema": OAuthErrorSchema}}} for code, text in (
    (400, "invalid_request, invalid_scope, unsupported_grant_type, invalid_grant ..."),
    (401, "invalid_client (unknown or disabled app, wrong secret)"),
    (429, "too many token and revoke requests for this client id (Retry-After says when "
          "to try again)"))}


def _bad_form():
    """A 400 invalid_request naming the first form value beyond its limit (or holding text
    that cannot be stored), a 401 invalid_client for HTTP Basic credentials that are not
    base64 of UTF-8 (authlib would fail on them), or None."""
    if request.headers.get("Authorization", "")[:6].lower() == "basic " \
            and request.authorization is None:
        return _oauth_error(401, "invalid_client", "malformed HTTP Basic credentials")
    for name, limit in FORM_LIMITS.items():
        value = request.form.get(name, "")
        problem = (f"longer than {limit} characters" if len(value) > limit
                   else unstorable(value))
        if problem:
            return _oauth_error(400, "invalid_request", f"{name}: {problem}")
    return None


def _oauth_error(status: int, error: str, description: str):
    response = jsonify(error=error, error_description=description, status=status,
                       description=description)
    response.status_code = status
    return response


def _standard_error_body(response):
    """Keep the OAuth2 fields clients parse, plus the platform's standard error body."""
    if response.status_code >= 400:
        body = json.loads(response.get_data(as_text=True) or "{}")
        body.update(status=response.status_code,
                    description=body.get("error_description") or body.get("error", "error"))
        response.set_data(json.dumps(body))
    return response


@blp.route("/token", methods=["POST"], endpoint="issue_token")
@blp.doc(security=CLIENT_SECURITY, responses=ERRORS, requestBody=_form(
    ["grant_type"], grant_type={"type": "string", "enum": ["client_credentials"]},
    scope={"type": "string", "example": "connctd.connector connctd.things.read"}))
@blp.response(200, TokenOut)
def issue_token():
    """Issue an app bearer token (client_credentials)

    `scope` is a space-separated subset of the app's scopes; omitted means all of them.
    """
    return _bad_form() or _standard_error_body(server.create_token_response())


@blp.route("/revoke", methods=["POST"], endpoint="revoke_token")
@blp.doc(security=CLIENT_SECURITY, responses=ERRORS, requestBody=_form(
    ["token"], token={"type": "string"},
    token_type_hint={"type": "string", "example": "access_token",
                     "description": "ignored: only access tokens exist (RFC 7009 2.1)"}))
@blp.response(200, description="Revoked, or not a token (RFC 7009): the answer is the same; "
                               "another app's token is refused (400 invalid_grant)")
def revoke_token():
    """Revoke one of the app's tokens (RFC 7009; the app authenticates as for a token)"""
    return _bad_form() or _standard_error_body(
        server.create_endpoint_response(Revocation.ENDPOINT_NAME))


def init_app(app) -> None:
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(ALL_SCOPES))
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN",
                          {"client_credentials": app.config["TOKEN_EXPIRES_IN"]})
    server.init_app(app)
