"""Route guards: a valid bearer token with a scope, and the end user's subject header."""

from __future__ import annotations

import functools
import re

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc6750.errors import InsufficientScopeError
from flask import g, request

from thingbridge.auth import token_cache
from thingbridge.errors import ApiError

SUBJECT_HEADER = "X-External-Subject-Id"
# What a subject may not hold, as a regular expression's character class (the OpenAPI
# document's pattern says the same): control characters (C0, DEL, C1), the line and paragraph
# separators, and what makes one subject look like another: the bidi marks, embeddings,
# overrides and isolates, the zero-width space, the word joiner and the invisible operators.
# The joiners some scripts and emoji need (U+200C, U+200D) pass.
REFUSED_IN_SUBJECT = (r"\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e"
                      r"\u2060-\u2064\u2066-\u2069")
_REFUSED = re.compile(f"[{REFUSED_IN_SUBJECT}]")


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return token_cache.lookup(token_string)


class _Protector(ResourceProtector):
    def parse_request_authorization(self, request):
        # The connctd documentation sends the token alone (`Authorization: <token>`), and
        # clients written against it do; a value without a scheme is taken as a bearer token.
        auth = (request.headers.get("Authorization") or "").strip()
        if auth and len(auth.split()) == 1:
            return self.get_token_validator("bearer"), auth
        return super().parse_request_authorization(request)


protector = _Protector()
protector.register_token_validator(_Validator())


def require_scope(scope: str):
    """Authenticate the app; 401 without a valid token, 403 insufficient_scope without scope."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                token = protector.acquire_token([scope])
            except InsufficientScopeError as exc:
                raise _challenged(ApiError(403, f"token lacks scope {scope}",
                                           "insufficient_scope"),
                                  f'error="insufficient_scope", scope="{scope}"') from exc
            except OAuth2Error as exc:
                # RFC 6750: a request that sent no credentials gets the challenge alone.
                raise _challenged(ApiError(401, "missing, invalid or expired bearer token",
                                           "UNAUTHORIZED"),
                                  'error="invalid_token"' if request.headers.get("Authorization")
                                  else "") from exc
            g.app = token.app
            return view(*args, **kwargs)

        wrapper._required_scope = scope  # read by the OpenAPI decoration
        return wrapper

    return decorator


def _challenged(error: ApiError, params: str) -> ApiError:
    """The error with the ``WWW-Authenticate`` challenge RFC 6750 asks 401 and 403 to carry."""
    challenge = f'Bearer realm="thingbridge"{", " + params if params else ""}'
    error.data = {"headers": {"WWW-Authenticate": challenge}}
    return error


def has_valid_token() -> bool:
    """Whether the request carries a valid bearer token of any app, whatever its scopes."""
    try:
        protector.acquire_token()
    except OAuth2Error:
        return False
    return True


def subject_id() -> str:
    """The end user the request acts for; 400 when the header is missing or unusable. WSGI
    gives header bytes decoded as Latin-1, and apps send UTF-8 (or ASCII, the same either
    way): the bytes are read again as UTF-8, so `café` is stored as sent, not as `cafÃ©`."""
    try:
        value = (request.headers.get(SUBJECT_HEADER) or "").encode("latin-1").decode()
    except UnicodeError:
        raise ApiError(400, f"header {SUBJECT_HEADER} is not UTF-8") from None
    # A subject is copied into every event and webhook and shown in the console: a tab or a
    # line break (U+2028 too) would split it in logs and line-based receivers, and a bidi
    # override or a zero-width space would make one subject look like another. Checked
    # before the blanks are stripped, which would take some of them away.
    if _REFUSED.search(value):
        raise ApiError(400, f"header {SUBJECT_HEADER} holds a control character")
    value = value.strip()
    if not value:
        raise ApiError(400, f"header {SUBJECT_HEADER} is required", "MISSING_SUBJECT")
    if len(value) > 255:
        raise ApiError(400, f"header {SUBJECT_HEADER} is longer than 255 characters")
    return value
