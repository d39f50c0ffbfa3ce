"""Configuration schemas: the app's Netatmo OAuth client (instance); nothing per client."""

from marshmallow import Schema, ValidationError, fields, validate, validates

from thingbridge.http.urls import redirect_url_problem


class InstanceConfig(Schema):
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    client_secret = fields.String(required=True, validate=validate.Length(min=1, max=200))
    origin_callback_uri = fields.String(
        required=True, validate=validate.Length(max=2000), metadata={
            "description": "Where the end user's browser lands after consent (https; http "
                           "only to localhost where the operator opened loopback)"})

    @validates("origin_callback_uri")
    def https_or_localhost(self, value, **kwargs):
        if problem := redirect_url_problem(value):
            raise ValidationError(f"origin_callback_uri {problem}")


class ClientConfig(Schema):
    pass
