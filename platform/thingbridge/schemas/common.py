"""Shapes shared by every resource: links and the error body."""

from marshmallow import Schema, fields


class HrefSchema(Schema):
    href = fields.Url(required=True, metadata={"description": "Absolute URL of the resource"})


class ErrorBodySchema(Schema):
    status = fields.Integer(required=True, metadata={"example": 400})
    error = fields.String(required=True, metadata={"example": "BAD_REQUEST"})
    description = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Field errors, for validation failures"})
