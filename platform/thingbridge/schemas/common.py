"""Shapes shared by every resource: the string-coercing value field and the error body."""

from __future__ import annotations

from marshmallow import Schema, fields, post_dump


class ValueString(fields.String):
    """Values on the wire are strings; JSON numbers and booleans are taken as their string
    form (``true``, ``21.5``), anything else is refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = repr(value)
        return super()._deserialize(value, attr, data, **kwargs)


class WithWarnings(Schema):
    """A response that may say what was accepted with a caveat (configuration keys ignored);
    ``warnings`` is left out when there are none, so a clean request gets the seed's shape."""

    warnings = fields.List(fields.String(), metadata={
        "description": "Configuration keys that were ignored; present only when there are "
                       "any"})

    @post_dump
    def _drop_no_warnings(self, data, **kwargs):
        if not data.get("warnings"):
            data.pop("warnings", None)
        return data


class ErrorBodySchema(Schema):
    status = fields.Integer(required=True, metadata={"example": 400})
    error = fields.String(required=True, metadata={"example": "BAD_REQUEST"})
    description = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Field errors, for validation failures"})
