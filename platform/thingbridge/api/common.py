"""What every resource blueprint shares: the Blueprint class and guarded, documented routes."""

from __future__ import annotations

import flask_smorest
from flask import request
from marshmallow import ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.routing import IntegerConverter, UnicodeConverter

from thingbridge.api import json_provider
from thingbridge.auth.guard import REFUSED_IN_SUBJECT, SUBJECT_HEADER, require_scope
from thingbridge.errors import ApiError
from thingbridge.schemas.common import ErrorBodySchema, unstorable

# Not blank, and nothing ``guard.subject_id`` refuses anywhere. The blanks are those Python's
# strip() takes (``\s`` differs between regex dialects), and the end is where nothing follows
# (Python's ``$`` also matches before a final line break).
_BLANK = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NO_CONTROL = f"[^{REFUSED_IN_SUBJECT}]"
_VISIBLE = f"[^{_BLANK}{REFUSED_IN_SUBJECT}]"
SUBJECT_PARAM = {"in": "header", "name": SUBJECT_HEADER, "required": True,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                            "pattern": f"^{_NO_CONTROL}*{_VISIBLE}{_NO_CONTROL}*(?![\\s\\S])"},
                 "description": "The app's end user this request acts for (UTF-8)"}
# Path converters bounded by what the ids can be: a longer one matches no route (404).
ID = "key(maxlength=36)"  # the platform's own ids (UUIDs)
KEY = "key(maxlength=200)"  # component, property and action ids

ERROR_TEXT = {
    400: "Invalid input or missing X-External-Subject-Id",
    401: "Missing, invalid or expired bearer token",
    403: "Token lacks the required scope (insufficient_scope)",
    404: "Not found (or owned by another app or subject)",
    409: "Conflict with the current state",
    424: "A dependency (provider, callback) is not configured",
    429: "TOO_MANY_REQUESTS: a per-app limit is spent (Retry-After says until when)",
    502: "The provider could not be reached",
    503: "OUTSIDE_CALLS_BUSY: the server already waits on as many outside servers (providers, "
         "name servers) as it may, and nothing was done (retry after Retry-After); or a "
         "dependency is down",
}
BODY_METHODS = ("POST", "PUT", "PATCH")


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400  # the contract's status for bad input (webargs: 422)

    def _load_location_data(self, *, schema, req, location):
        data = super()._load_location_data(schema=schema, req=req, location=location)
        problem = unstorable(data)
        if problem:
            raise ValidationError(problem)
        return data

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        return json_provider.loads(req.get_data(cache=True))

    def load_json(self, req, schema):
        try:
            return super().load_json(req, schema)
        # What json_provider.loads refuses (NaN, Infinity, 1e400, nested deeper than it
        # recurses), and an integer of more digits than Python converts.
        except (RecursionError, ValueError) as exc:
            return self._handle_invalid_json_error(exc, req)


def json_bodies_only() -> None:
    """415 for a body that is not JSON by its Content-Type. The parser takes such a body as
    none at all, which for an optional body runs the operation without what the client sent:
    an action without its parameters, a PATCH that answers 200 and changes nothing."""
    if request.method in BODY_METHODS and not request.is_json and request.get_data(cache=True):
        raise ApiError(415, "the request body must be JSON (Content-Type application/json), "
                            f"not {request.mimetype or 'without a Content-Type'}")


class KeyConverter(UnicodeConverter):
    """A path segment like ``string`` without NUL (no stored id holds one): 404, not a
    database error."""

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]", 1)


class AsciiIntegerConverter(IntegerConverter):
    """``int`` of ASCII digits: werkzeug's ``\\d+`` also matches other scripts' digits, which
    ``int`` reads, so ``/deliveries/١`` was delivery 1 (one resource, many URLs)."""

    regex = r"[0-9]+"


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose bad input is a documented 400 (a body that is not JSON
    a documented 415), and whose ``protected`` routes document the subject header next to
    their other parameters."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks += [self._prepare_subject_doc, self._prepare_body_doc]
        self.before_request(json_bodies_only)

    def arguments(self, schema, *args, **kwargs):
        # Given a class, webargs makes (and sets up) a new schema on every request; loading
        # changes no schema state, so one instance serves every request and thread.
        return super().arguments(schema() if isinstance(schema, type) else schema,
                                 *args, **kwargs)

    @staticmethod
    def _prepare_subject_doc(doc, doc_info, **kwargs):
        # Appended, not given to blp.doc: a manual "parameters" list would replace the query
        # parameters that @blp.arguments documents.
        if doc_info.get("subject"):
            doc.setdefault("parameters", []).append(SUBJECT_PARAM)
        doc.setdefault("parameters", []).extend(doc_info.get("headers", ()))
        return doc

    @staticmethod
    def _prepare_body_doc(doc, doc_info, *, method, **kwargs):
        if method.upper() in BODY_METHODS:
            doc.setdefault("responses", {}).update(error_responses(415, text={
                415: "A body that is not JSON (Content-Type application/json or */*+json)"}))
        return doc


def error_responses(*codes: int, text: dict | None = None) -> dict:
    """OpenAPI responses for ``codes``, each the standard error body (``text`` overrides the
    usual descriptions)."""
    text = {**ERROR_TEXT, **(text or {})}
    return {code: {"description": text.get(code, "Error"),
                   "content": {"application/json": {"schema": ErrorBodySchema}}}
            for code in sorted(codes)}


def link(path: str, method: str, subject: bool = False, **parameters: str) -> dict:
    """An OpenAPI link to the operation ``method`` on ``path`` (as the document spells it),
    its parameters taken from the request or response that links to it (runtime expressions
    such as ``$response.body#/id``); ``subject`` carries X-External-Subject-Id over."""
    if subject:
        parameters[f"header.{SUBJECT_HEADER}"] = f"$request.header.{SUBJECT_HEADER}"
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": parameters}


def links(status: int, **named: dict) -> dict:
    """``blp.doc`` arguments adding ``named`` links to the ``status`` response: how a client
    (or a stateful fuzzer) goes from a created resource to the operations on it."""
    return {"responses": {status: {"links": named}}}  # int: merged with the decorator's


def protected(blp, scope: str, subject: bool = False, errors=(400, 404)):
    """Require ``scope`` and document it, the subject header and the error responses."""

    def decorator(view):
        wrapped = blp.doc(security=[{"bearerAuth": [scope]}],
                          responses=error_responses(401, 403, *errors))(require_scope(scope)(view))
        wrapped._apidoc["subject"] = subject
        return wrapped

    return decorator


def headers(*parameters: dict):
    """Document header ``parameters`` (OpenAPI parameter objects) that a view reads itself,
    next to the ones ``protected`` and ``@blp.arguments`` document (a ``parameters`` list given
    to ``blp.doc`` would replace those). Placed above ``protected``, whose doc it extends."""

    def decorator(view):
        view._apidoc.setdefault("headers", []).extend(parameters)
        return view

    return decorator


def cursor_page(rows: list, args: dict, cursor_of) -> dict:
    """One page of ``rows``, read with ``args["limit"] + 1`` to tell whether more follow: the
    ``items``, the ``cursor`` to pass as ``after`` next time, and ``has_more``."""
    items = rows[:args["limit"]]
    return {"items": items, "cursor": cursor_of(items[-1]) if items else args["after"],
            "has_more": len(rows) > args["limit"]}
