"""Shapes shared by every resource: the string-coercing value field and the error body."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

# Values and parameters are stored as text; this is what one may be on the way in.
MAX_VALUE = 4096


def fits(column) -> validate.Length:
    """No longer than ``column`` (a model's CharField) holds: a longer string is a 400 and is
    documented as maxLength, never a database error."""
    return validate.Length(max=column.max_length)


VALUE_DOC = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE}, {"type": "number"},
                       {"type": "boolean"}]}


class ValueString(fields.Field):
    """Values on the wire are strings; JSON numbers and booleans are taken as their string
    form (``true``, ``21.5``), anything else is refused. At most ``MAX_VALUE`` characters."""

    default_error_messages = {"invalid": "must be a string, a number or a boolean",
                              "too_long": f"must be at most {MAX_VALUE} characters"}

    def __init__(self, **kwargs):
        super().__init__(metadata={**VALUE_DOC, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = repr(value)
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if len(value) > MAX_VALUE:
            raise self.make_error("too_long")
        return value


class ErrorBodySchema(Schema):
    status = fields.Integer(required=True, metadata={"example": 400})
    error = fields.String(required=True, metadata={"example": "BAD_REQUEST"})
    description = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Field errors, for validation failures"})
