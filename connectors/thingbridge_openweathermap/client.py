"""Provider I/O: current weather over HTTP, with errors classified for the host."""

from __future__ import annotations

import requests

from thingbridge.contract import ConfigError, TransientError

DEFAULT_RETRY_AFTER = 60.0


def location_params(client_config: dict) -> dict:
    if "city" in client_config:
        return {"q": client_config["city"]}
    return {"lat": client_config["lat"], "lon": client_config["lon"]}


def current_weather(session: requests.Session, base_url: str, app_key: str,
                    location: dict, timeout: float) -> dict:
    try:
        resp = session.get(f"{base_url}/data/2.5/weather",
                           params={**location, "appid": app_key, "units": "metric"},
                           timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"OpenWeatherMap unreachable: {exc.__class__.__name__}") from exc
    message = _message(resp)
    if resp.status_code == 401:
        raise ConfigError(f"invalid OpenWeatherMap app key: {message}")
    if resp.status_code == 404:
        raise ConfigError(f"location not found: {message}")
    if resp.status_code == 429:
        raise TransientError(f"OpenWeatherMap rate limit: {message}",
                             retry_after=_retry_after(resp))
    if resp.status_code >= 500:
        raise TransientError(f"OpenWeatherMap answered {resp.status_code}")
    if resp.status_code >= 400:
        raise ConfigError(f"OpenWeatherMap rejected the request: {message}")
    try:
        return resp.json()
    except ValueError as exc:
        raise TransientError("OpenWeatherMap answered with invalid JSON") from exc


def _message(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("message", ""))
    except (ValueError, AttributeError):
        return resp.text[:200]


def _retry_after(resp: requests.Response) -> float:
    try:
        return float(resp.headers.get("Retry-After", DEFAULT_RETRY_AFTER))
    except ValueError:
        return DEFAULT_RETRY_AFTER
