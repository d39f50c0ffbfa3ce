"""The one error body of the API: ``{"status": int, "error": CODE, "description": str}``."""

from __future__ import annotations

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 409: "CONFLICT", 410: "GONE",
    413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 424: "FAILED_DEPENDENCY",
    429: "TOO_MANY_REQUESTS", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    def __init__(self, status: int, description: str, error: str | None = None, **extra):
        super().__init__(description)
        self.status = status
        self.error = error or CODES.get(status, "ERROR")
        self.description = description
        self.extra = extra


def error_response(status: int, description: str, error: str | None = None, **extra):
    body = {"status": status, "error": error or CODES.get(status, "ERROR"),
            "description": description, **extra}
    return jsonify(body), status


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found")


def _validation_description(messages) -> str:
    """Flatten webargs/marshmallow messages into one readable sentence."""
    parts: list[str] = []

    def walk(prefix, node):
        if isinstance(node, dict):
            for key, value in node.items():
                # webargs nests by location ("json", "query"): those are not field names.
                # "_schema" is marshmallow's name for errors about the object as a whole.
                if key in ("json", "query", "headers", "form", "path", "_schema"):
                    name = prefix
                else:
                    name = f"{prefix}.{key}" if prefix else str(key)
                walk(name, value)
        elif isinstance(node, list) and node and all(isinstance(m, str) for m in node):
            parts.append(f"{prefix or 'body'}: {' '.join(node)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(f"{prefix}[{i}]", value)
        else:
            parts.append(f"{prefix or 'body'}: {node}")

    walk("", messages)
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


def handle_http_exception(exc: HTTPException):
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if exc.code == 422 or messages:
        # flask-smorest answers validation errors with 422; the contract says 400.
        return error_response(400, _validation_description(messages), errors=messages)
    description = data.get("message") or exc.description or CODES.get(exc.code, "error")
    return error_response(exc.code or 500, description)


def register_error_handlers(app) -> None:
    app.register_error_handler(ApiError, lambda e: error_response(
        e.status, e.description, e.error, **e.extra))
    app.register_error_handler(HTTPException, handle_http_exception)

    @app.errorhandler(Exception)
    def internal(exc):  # never a stack trace or an HTML page
        log.exception("unhandled error")
        return error_response(500, "internal error")
