"""Provider I/O: Netatmo API calls with bearer tokens, errors classified for the host.

Netatmo error bodies are ``{"error": {"code": N, "message": "..."}}``: codes 2/3 mean the access
token is bad (the host refreshes once), 26 is the user usage limit (throttling, not reauth);
``VERDICTS`` set the client to ERROR, any other code is transient.
"""

from __future__ import annotations

import requests

from thingbridge.connectors.contract import (
    ActionError,
    ConfigError,
    InstanceRefused,
    ReauthRequired,
    TokenRejected,
    TransientError,
    json_object,
)
from thingbridge.http.retry_after import parse_retry_after

TOKEN_CODES = {2, 3}
# Netatmo's error codes that are a verdict on the instance or the grant: the application
# deactivated or unknown (5, 22); the operation forbidden to the grant's scopes (13), its user
# gone (23) or its refresh token invalid (30): a new consent.
VERDICTS = {5: InstanceRefused, 22: InstanceRefused, 13: ReauthRequired, 23: ReauthRequired,
            30: ReauthRequired}
USAGE_LIMIT = 26
DEFAULT_THROTTLE = 300.0
# Answers that say "not now" (a request timeout, too early) whatever their body says.
NOT_NOW = {408, 425}


def call(session: requests.Session, method: str, url: str, token: str, timeout: float,
         action: bool = False, **kwargs) -> dict:
    try:
        resp = session.request(method, url, headers={"Authorization": f"Bearer {token}"},
                               timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise TransientError(f"Netatmo unreachable: {exc.__class__.__name__}") from exc
    if resp.status_code >= 500 or resp.status_code in NOT_NOW:
        raise TransientError(f"Netatmo answered {resp.status_code}")
    body = json_object(resp)
    error = body.get("error") if isinstance(body, dict) and isinstance(
        body.get("error"), dict) else {}
    code, message = error.get("code"), error.get("message", "")
    if code == USAGE_LIMIT or resp.status_code == 429:  # a 429 from a proxy says so too
        raise TransientError(f"Netatmo usage limit reached: {message or resp.status_code}",
                             retry_after=_retry_after(resp))
    if body is None:
        raise TransientError("Netatmo answered with invalid JSON (or not a JSON object)")
    if 200 <= resp.status_code < 300 and "error" not in body:
        return body
    if code in TOKEN_CODES:
        raise TokenRejected(f"access token rejected: {message}")
    if code is None:  # not Netatmo's refusal (a proxy's, a gateway's, a 3xx): no verdict
        raise TransientError(f"Netatmo answered {resp.status_code} without an error code")
    if action:
        raise ActionError(f"Netatmo refused the action: {message or resp.status_code}")
    if code in VERDICTS:
        raise VERDICTS[code](f"Netatmo refused the request: {message or resp.status_code}")
    # Any other code (a device not found or unreachable, an internal error): try again later,
    # not an ERROR that would stop the client for good.
    raise TransientError(f"Netatmo refused the request ({code}): {message}")


def check_credentials(session: requests.Session, token_url: str, client_id: str,
                      client_secret: str, timeout: float) -> None:
    """invalid_client means bad credentials; invalid_grant (for our bogus token) means good."""
    try:
        resp = session.post(token_url, data={
            "grant_type": "refresh_token", "refresh_token": "thingbridge-credential-check",
            "client_id": client_id, "client_secret": client_secret}, timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"Netatmo unreachable: {exc.__class__.__name__}") from exc
    if resp.status_code >= 500:
        raise TransientError(f"Netatmo token endpoint answered {resp.status_code}")
    body = json_object(resp)
    if body is None:
        raise TransientError("Netatmo token endpoint answered with invalid JSON")
    if body.get("error") == "invalid_client":
        raise ConfigError("Netatmo rejected client_id/client_secret")


def _retry_after(resp: requests.Response) -> float:
    return parse_retry_after(resp.headers.get("Retry-After"), DEFAULT_THROTTLE)
