"""Shapes shared by every resource: the string-coercing value field and the error body."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping

from marshmallow import Schema, ValidationError, fields, post_dump, validate

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"  # every time the API shows: UTC, RFC 3339

# Values and parameters are stored as text; this is what one may be on the way in.
MAX_VALUE = 4096


# What text cannot hold: NUL (PostgreSQL's text) and a lone surrogate (UTF-8; a Python string
# holds a pair JSON escapes as one character, so every surrogate in one is lone).
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
NUL_REFUSED = "text with a NUL character cannot be stored"
SURROGATE_REFUSED = "text with a lone surrogate (\\ud800-\\udfff unpaired) cannot be stored"


def unstorable(value) -> str | None:
    """Why a loaded JSON value (keys included) or form cannot be stored, or None: PostgreSQL
    text holds no NUL character, and UTF-8 no lone surrogate (JSON's ``\\ud800`` unpaired), so
    such a value is a 400 wherever it would go."""
    if isinstance(value, str):
        if "\x00" in value:
            return NUL_REFUSED
        if not value.isascii() and UNSTORABLE_CHARACTER.search(value):
            return SURROGATE_REFUSED
        return None
    if isinstance(value, Mapping):
        return next(filter(None, (unstorable(k) or unstorable(v) for k, v in value.items())),
                    None)
    if isinstance(value, list | tuple):
        return next(filter(None, map(unstorable, value)), None)
    return None


def storable(text: str, limit: int) -> str:
    """``text`` as it can be stored: each character ``unstorable`` names replaced by U+FFFD,
    cut to ``limit`` characters. For text the platform did not choose (a provider's)."""
    return UNSTORABLE_CHARACTER.sub("\ufffd", text)[:limit]


class FullMatch(validate.Regexp):
    """``validate.Regexp`` over the whole value: Python's ``$`` also matches before a final
    line break, which the documented pattern's (JSON Schema's) does not, so ``"main\\n"``
    passed ``^[a-z]+$``."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def fits(column) -> validate.Length:
    """No longer than ``column`` (a model's CharField) holds: a longer string is a 400 and is
    documented as maxLength, never a database error."""
    return validate.Length(max=column.max_length)


def iso(value: datetime.datetime) -> str:
    """``value.strftime(ISO)``, a third of its CPU for a naive time (every stored one)."""
    if value.tzinfo is None and value.year >= 1000:  # isoformat pads years with zeros
        return value.isoformat(timespec="microseconds") + "Z"
    return value.strftime(ISO)


class Timestamp(fields.DateTime):
    """A stored (naive UTC) time as RFC 3339 with its ``Z``, like every time the API shows."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else iso(value)


class Flag(fields.Boolean):
    """A JSON boolean, nothing else (marshmallow's Boolean also takes 0, 1, "yes", ...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


VALUE_DOC = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE}, {"type": "number"},
                       {"type": "boolean"}]}


class QueryInteger(fields.Integer):
    """An integer query parameter as a client writes one: ASCII digits, a minus sign for a
    negative. Python's ``int`` alone would also read ``+5``, `` 5``, ``1_000`` and ``٥``."""

    _DIGITS = re.compile(r"-?[0-9]+")

    def _validated(self, value):
        if isinstance(value, str) and not self._DIGITS.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


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
