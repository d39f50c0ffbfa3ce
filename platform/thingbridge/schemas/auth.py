"""The token endpoint's answers: a bearer token, or an OAuth2 error in the standard body."""

from marshmallow import Schema, fields

from thingbridge.schemas.common import ErrorBodySchema


class TokenOut(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds"})
    scope = fields.String(required=True, metadata={"description": "Space-separated scopes"})


class OAuthErrorSchema(ErrorBodySchema):
    """``error`` is the OAuth2 code (``invalid_client``, ...)."""

    error_description = fields.String()
