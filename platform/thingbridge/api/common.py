"""Helpers every resource blueprint uses: absolute links, guarded and documented routes."""

from __future__ import annotations

import functools

from flask import current_app, request

from thingbridge.auth.guard import SUBJECT_HEADER, require_scope
from thingbridge.schemas.common import ErrorBodySchema

SUBJECT_PARAM = {"in": "header", "name": SUBJECT_HEADER, "required": True,
                 "schema": {"type": "string", "maxLength": 255},
                 "description": "The app's end user this request acts for"}


def href(path: str) -> str:
    """Absolute URL: the configured public base URL, else the one the request came in on."""
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    return base.rstrip("/") + path


def protected(blp, scope: str, subject: bool = False, errors=(400, 404)):
    """Require ``scope`` and document it, the subject header and the error responses."""

    def decorator(view):
        view = require_scope(scope)(view)
        params = [SUBJECT_PARAM] if subject else []
        view = blp.doc(security=[{"bearerAuth": [scope]}], parameters=params)(view)
        for code in sorted({401, 403, *errors}):
            view = blp.alt_response(code, schema=ErrorBodySchema,
                                    description=_ERROR_TEXT.get(code, "Error"))(view)
        return functools.wraps(view)(view)

    return decorator


_ERROR_TEXT = {
    400: "Invalid input or missing X-External-Subject-Id",
    401: "Missing, invalid or expired bearer token",
    403: "Token lacks the required scope (insufficient_scope)",
    404: "Not found (or owned by another app or subject)",
    409: "Conflict with the current state",
    424: "A dependency (provider, callback) is not configured",
    502: "The provider could not be reached",
}
