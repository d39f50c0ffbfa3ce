"""Shapes shared by every resource: the string-coercing value field and the error body."""

from __future__ import annotations

from marshmallow import Schema, fields


class ValueString(fields.String):
    """Values on the wire are strings; JSON numbers and booleans are taken as their string
    form (``true``, ``21.5``), anything else is refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = repr(value)
        return super()._deserialize(value, attr, data, **kwargs)


class ErrorBodySchema(Schema):
    status = fields.Integer(required=True, metadata={"example": 400})
    error = fields.String(required=True, metadata={"example": "BAD_REQUEST"})
    description = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Field errors, for validation failures"})
