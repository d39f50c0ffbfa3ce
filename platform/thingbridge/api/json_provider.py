"""JSON response bodies written by orjson: the bytes Flask's own provider writes.

Flask's provider encodes with the standard library (keys sorted, non-ASCII escaped, dates as
HTTP dates); for a list of 20 expanded things that took a tenth of the request's CPU, orjson a
tenth of that. orjson writes only what it writes the same way: every other case (non-ASCII
text and DEL, which Flask escapes as ``\\uXXXX``; keys that are not strings; integers beyond
64 bits; debug mode's indented output) goes to Flask's encoder. Values Flask hands to its
``default`` (dates, decimals, dataclasses, ``__html__``) are handed to the same function. Two
notations differ, for the same values: a float between 1e-9 and 1e-4 (``1e-05`` is
``0.00001``, ``1e-07`` ``1e-7``), and NaN or infinity, ``null`` (the standard library's ``NaN``
is not JSON). Bodies read are JSON only: ``NaN``, ``Infinity`` and a number beyond a double
(``1e400``), which the standard library reads, are a 400.
"""

from __future__ import annotations

import json
import math

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: a number no double holds, not infinity
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def loads(data: str | bytes, **kwargs):
    """A request body's JSON (UTF-8); ValueError for what is not JSON, and for JSON nested
    deeper than the parser recurses."""
    if isinstance(data, bytes):
        data = data.decode()  # not sniffed as UTF-16 or -32, nor a BOM skipped
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite, **kwargs)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


class JSONProvider(DefaultJSONProvider):
    def loads(self, s, **kwargs):
        return loads(s, **kwargs)  # Flask's get_json answers 400 to a ValueError

    def response(self, *args, **kwargs):
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: Flask's encoder decides (or raises)
            return super().response(*args, **kwargs)
        if not body.isascii() or b"\x7f" in body:  # Flask escapes DEL too
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)
