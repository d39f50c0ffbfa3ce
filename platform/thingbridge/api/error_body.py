"""The ``Api`` that answers every error of the HTTP API in the standard body (``errors.py``)."""

from __future__ import annotations

import logging

import flask_smorest
from flask import request
from gunicorn.http.errors import ParseException
from peewee import DataError, IntegrityError
from werkzeug.exceptions import HTTPException

from thingbridge.crypto import SecretKeyError
from thingbridge.errors import CODES, ApiError
from thingbridge.schemas.common import ErrorBodySchema

log = logging.getLogger(__name__)

# webargs' location keys and marshmallow's whole-object key: not field names.
_NOT_FIELDS = ("json", "query", "headers", "form", "path", "_schema")


def _string_keys(messages):
    """marshmallow keys a list's errors by index: JSON objects need string keys."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [_string_keys(value) for value in messages]
    return messages


def _validation_description(messages) -> str:
    """Flatten webargs/marshmallow messages into one readable sentence."""
    parts: list[str] = []

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, int):
                    name = f"{prefix}[{key}]"
                elif key in _NOT_FIELDS:
                    name = prefix
                else:
                    name = f"{prefix}.{key}" if prefix else str(key)
                walk(name, value)
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            parts.append(f"{prefix or 'body'}: {' '.join(node)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(f"{prefix}[{i}]", value)
        else:
            parts.append(f"{prefix or 'body'}: {node}")

    walk("", messages)
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


class Api(flask_smorest.Api):
    """flask-smorest's Api with the platform's error body, documented and answered."""

    ERROR_SCHEMA = ErrorBodySchema

    def init_app(self, app, **kwargs):
        # Path prefix -> the view answering a URL under it that no route matched (a 404 or 405
        # raised before any blueprint took the request): pages answer with a page.
        self.page_errors = {}
        super().init_app(app, **kwargs)
        app.register_error_handler(IntegrityError, self.handle_conflict)
        app.register_error_handler(DataError, self.handle_unstorable)
        app.register_error_handler(ParseException, self.handle_unreadable)
        app.register_error_handler(SecretKeyError, self.handle_secret_unreadable)
        app.register_error_handler(Exception, self.handle_unexpected)

    def handle_http_exception(self, error: HTTPException):
        if request.blueprint is None:
            for prefix, page in self.page_errors.items():
                if request.path == prefix or request.path.startswith(prefix + "/"):
                    return page(error)
        data = getattr(error, "data", None) or {}
        headers = dict(data.get("headers") or {})
        if getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(error.valid_methods)
        if isinstance(error, ApiError):
            body = {"status": error.code, "error": error.error,
                    "description": error.description, **error.extra}
        elif messages := data.get("messages"):
            # Bad input is a 400 by contract (webargs would say 422).
            body = {"status": 400, "error": CODES[400],
                    "description": _validation_description(messages),
                    "errors": _string_keys(messages)}
        else:
            status = error.code or 500
            body = {"status": status, "error": CODES.get(status, "ERROR"),
                    "description": data.get("message") or error.description
                    or CODES.get(status, "error")}
        return body, body["status"], headers

    def handle_conflict(self, error: IntegrityError):
        """A constraint another request's change tripped between our read and our write (a
        client created under an instance being deleted, the same name twice): retryable."""
        log.info("integrity conflict: %s", error)
        return self.handle_http_exception(ApiError(
            409, "conflicting concurrent change; read the resource again and retry"))

    def handle_unstorable(self, error: DataError):
        """A value the database refused as such (out of range, too long, a NUL character):
        the schemas bound what they can, this answers what slipped past them."""
        log.warning("value refused by the database: %s", error)
        return self.handle_http_exception(ApiError(
            400, "a value in the request cannot be stored (too long, out of range, or a NUL "
                 "character)"))

    def handle_unreadable(self, error: ParseException):
        """A body gunicorn could not read as HTTP frames it (a bad chunk size or terminator):
        raised while the view reads the body, it is the client's error."""
        log.info("unreadable request body: %r", error)
        return self.handle_http_exception(ApiError(
            400, f"the request body is malformed ({error.__class__.__name__})"))

    def handle_secret_unreadable(self, error: SecretKeyError):
        """A stored secret the configured keys cannot decrypt (a key removed too early): the
        operator's to fix, not the caller's."""
        log.error("%s: was a key removed from THINGBRIDGE_SECRET_KEYS before "
                  "`thingbridge rotate-secrets`?", error)
        return self.handle_http_exception(ApiError(
            503, "a stored secret this request needs cannot be decrypted with the platform's "
                 "keys; the operator must restore the key", "SECRET_UNREADABLE"))

    def handle_unexpected(self, error: Exception):
        """Never a stack trace or an HTML page: the trace goes to the log only."""
        log.exception("unhandled error", exc_info=error)
        return self.handle_http_exception(ApiError(500, "internal error"))
