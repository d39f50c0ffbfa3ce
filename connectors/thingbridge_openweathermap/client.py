"""Provider I/O: current weather over HTTP, with errors classified for the host."""

from __future__ import annotations

import requests

from thingbridge.connectors.contract import (
    ConfigError,
    InstanceRefused,
    TransientError,
    json_object,
)
from thingbridge.http.retry_after import parse_retry_after

WEATHER_PATH = "/data/2.5/weather"
# OpenWeatherMap's 429 carries no Retry-After; its budgets are per minute.
DEFAULT_RETRY_AFTER = 60.0


def location_params(client_config: dict) -> dict:
    """Query parameters of a validated client location (see schemas.ClientConfig)."""
    if client_config.get("city"):
        return {"q": client_config["city"].strip()}
    return {"lat": client_config["lat"], "lon": client_config["lon"]}


def current_weather(session: requests.Session, base_url: str, app_key: str,
                    location: dict, timeout: float) -> dict:
    try:
        resp = session.get(f"{base_url}{WEATHER_PATH}",
                           params={**location, "appid": app_key, "units": "metric"},
                           timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"OpenWeatherMap unreachable: {exc.__class__.__name__}") from exc
    if resp.status_code != 200:
        raise _classify(resp)
    payload = json_object(resp)
    if payload is None:
        raise TransientError("OpenWeatherMap answered with invalid JSON (or not a JSON object)")
    return payload


def _classify(resp: requests.Response) -> Exception:
    status, message = resp.status_code, _message(resp)
    if status == 401:
        return InstanceRefused(f"invalid OpenWeatherMap app key: {message}")
    if status == 404:
        return ConfigError(f"location not found: {message}")
    if status == 429:
        return TransientError(f"OpenWeatherMap rate limit: {message}",
                              retry_after=retry_after(resp.headers.get("Retry-After")))
    if status == 400:  # e.g. "wrong latitude": the request built from the config is wrong
        return ConfigError(f"OpenWeatherMap rejected the request ({status}): {message}")
    # 5xx, 408, 425, and what OpenWeatherMap does not answer (a proxy's 403, a 3xx): nothing
    # the configuration can fix, so no ERROR that would stop polling for good.
    return TransientError(f"OpenWeatherMap answered {status}")


def _message(resp: requests.Response) -> str:
    body = json_object(resp)
    return resp.text[:200] if body is None else str(body.get("message", ""))


def retry_after(header: str | None, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), else the default."""
    return parse_retry_after(header, DEFAULT_RETRY_AFTER, now)
