"""Settings from ``THINGBRIDGE_*`` environment variables, with embedded-mode defaults."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from thingbridge.http import addresses

PREFIX = "THINGBRIDGE_"
PROVIDER_SETTINGS = ("_BASE_URL", "_POLL_INTERVAL", "_RATE_LIMIT", "_PKCE", "_SIMULATOR_PORT")
TRUE = ("1", "true", "yes", "on")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(PREFIX + name, default)


def var_dir() -> Path:
    """Where the embedded default keeps its SQLite file, broker folders and dev key."""
    path = Path(_env("VAR_DIR", str(Path.cwd() / "var"))).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dev_secret_keys() -> str:
    # Embedded mode only: a key file created once with owner-only permissions, so restarts can
    # still decrypt. Production sets THINGBRIDGE_SECRET_KEYS explicitly.
    key_file = var_dir() / "secret.keys"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(Fernet.generate_key().decode())
    return key_file.read_text().strip()


class ConfigError(RuntimeError):
    """A setting production cannot run without (the message says which and why)."""


def load_settings(overrides: dict | None = None) -> dict:
    """The Flask config mapping: every setting the platform, workers and connectors read."""
    settings = {
        "DATABASE_URL": _env("DATABASE_URL") or f"sqlite:///{var_dir() / 'thingbridge.db'}",
        # PostgreSQL connections per process (0: one per thread that uses the database;
        # `thingbridge api` sets it to the gunicorn threads), how long opening one (or waiting
        # for a free one) may take, and the name they show in pg_stat_activity.
        "DATABASE_POOL_SIZE": int(_env("DATABASE_POOL_SIZE", "0")),
        "DATABASE_CONNECT_TIMEOUT": float(_env("DATABASE_CONNECT_TIMEOUT", "5")),
        "DATABASE_APPLICATION_NAME": _env("DATABASE_APPLICATION_NAME", "thingbridge"),
        "BROKER_URL": _env("BROKER_URL") or "filesystem://",
        # Comma-separated Fernet keys, newest first: rotation adds a key in front and
        # `thingbridge rotate-secrets` re-encrypts every row with it.
        "SECRET_KEYS": _env("SECRET_KEYS"),
        "PUBLIC_BASE_URL": _env("PUBLIC_BASE_URL"),
        # Flask refuses a larger request body with 413 (in the standard error body).
        "MAX_CONTENT_LENGTH": int(_env("MAX_BODY", str(1024 * 1024))),
        "TOKEN_EXPIRES_IN": int(_env("TOKEN_EXPIRES_IN", "3600")),
        # Seconds an API process trusts a bearer token it read (0: read it on every request):
        # the most a revocation or an app disabled elsewhere takes to reach every process.
        "TOKEN_CACHE_SECONDS": float(_env("TOKEN_CACHE_SECONDS", "5")),
        "OAUTH_STATE_TTL": int(_env("OAUTH_STATE_TTL", "600")),
        "DISPATCH_INTERVAL": float(_env("DISPATCH_INTERVAL", "5")),
        "DISPATCH_BATCH": int(_env("DISPATCH_BATCH", "500")),
        # Seconds a started poll or action delivery holds its row against a second worker: a
        # worker that dies mid-task delays that work by at most this. Longer than a task takes.
        "TASK_LEASE": float(_env("TASK_LEASE", "60")),
        "HTTP_TIMEOUT": float(_env("HTTP_TIMEOUT", "10")),
        # An action not COMPLETED/FAILED this many seconds after it was triggered fails (timeout).
        "ACTION_TIMEOUT": int(_env("ACTION_TIMEOUT", "60")),
        # Redis/SQS only: how long an unacknowledged task waits before another worker gets it
        # (a worker killed mid-poll). Longer than the slowest task, shorter than patience.
        "BROKER_VISIBILITY_TIMEOUT": int(_env("BROKER_VISIBILITY_TIMEOUT", "300")),
        # Events: how often beat moves the outbox to webhooks and brokers, and how long they
        # stay readable (GET /api/v1/events, replay) after every delivery module is done.
        "EVENT_PUMP_INTERVAL": float(_env("EVENT_PUMP_INTERVAL", "1")),
        "EVENT_RETENTION_DAYS": float(_env("EVENT_RETENTION_DAYS", "7")),
        # Comma-separated broker URLs that receive every event: amqp://, redis://, mqtt://.
        "EVENT_BROKERS": _env("EVENT_BROKERS", ""),
        # Seconds a publish task holds one (broker, app) before another may take it over.
        "PUBLISHER_LEASE": float(_env("PUBLISHER_LEASE", "60")),
        # Webhooks: first retry delay (doubling), give-up age, per-attempt timeout, lease.
        "WEBHOOK_RETRY_BASE": float(_env("WEBHOOK_RETRY_BASE", "10")),
        "WEBHOOK_MAX_AGE": float(_env("WEBHOOK_MAX_AGE", str(3 * 24 * 3600))),
        "WEBHOOK_TIMEOUT": float(_env("WEBHOOK_TIMEOUT", _env("OUTBOUND_TIMEOUT", "10"))),
        # Sending to apps' URLs (README "Running it safely"): the whole-attempt deadline of an
        # action callback, and the CIDR ranges outside the public internet that may be reached
        # (default: loopback in the embedded mode, none otherwise).
        "OUTBOUND_TIMEOUT": float(_env("OUTBOUND_TIMEOUT", "10")),
        "WEBHOOK_LEASE": float(_env("WEBHOOK_LEASE", "60")),
        # Lanes one app's webhooks may hold at once (each takes a worker thread while it sends).
        "WEBHOOK_APP_CONCURRENCY": int(_env("WEBHOOK_APP_CONCURRENCY", "4")),
        "WEBHOOK_SECRET_OVERLAP": float(_env("WEBHOOK_SECRET_OVERLAP", str(24 * 3600))),
        # Fair share between apps (README "Running it safely"); 0 turns a limit off.
        "TOKEN_REQUESTS_PER_MINUTE": int(_env("TOKEN_REQUESTS_PER_MINUTE", "300")),
        "ACTION_TRIGGERS_PER_MINUTE": int(_env("ACTION_TRIGGERS_PER_MINUTE", "6000")),
        "WEBHOOKS_PER_APP": int(_env("WEBHOOKS_PER_APP", "100")),
        "REPLAYS_IN_FLIGHT": int(_env("REPLAYS_IN_FLIGHT", "5")),
        "THINGS_PER_SUBJECT": int(_env("THINGS_PER_SUBJECT", "10000")),
        "ACTION_APP_CONCURRENCY": int(_env("ACTION_APP_CONCURRENCY", "4")),
        # Operations: log lines as text or json; a bearer token GET /metrics requires (if set).
        "LOG_FORMAT": (_env("LOG_FORMAT") or "text").lower(),
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        # The console's session cookie lifetime, seconds.
        "CONSOLE_SESSION_LIFETIME": int(_env("CONSOLE_SESSION_LIFETIME", str(12 * 3600))),
    }
    # Provider settings: THINGBRIDGE_<TYPE>_BASE_URL, _POLL_INTERVAL, _RATE_LIMIT, _PKCE and
    # _SIMULATOR_PORT (``thingbridge run``).
    for key, value in os.environ.items():
        if key.startswith(PREFIX) and key.endswith(PROVIDER_SETTINGS):
            settings[key[len(PREFIX):]] = value
    settings.update(overrides or {})
    embedded = settings["DATABASE_URL"].startswith("sqlite")
    if not embedded:
        _require_production_settings(settings)
    elif not settings["SECRET_KEYS"]:
        settings["SECRET_KEYS"] = _dev_secret_keys()
    if "OUTBOUND_ALLOW" not in settings:
        settings["OUTBOUND_ALLOW"] = _outbound_allow(embedded)
    addresses.parse_allow(settings["OUTBOUND_ALLOW"])  # a bad range stops the start
    return settings


def _outbound_allow(embedded: bool) -> str:
    """Development convenience, a risk in production: callbacks and webhooks to this machine.
    THINGBRIDGE_ALLOW_HTTP_LOOPBACK=1 (the older switch) adds the loopback range."""
    allow = _env("OUTBOUND_ALLOW")
    loopback = _env("ALLOW_HTTP_LOOPBACK")
    if allow is None:
        allow = addresses.LOOPBACK if embedded and loopback is None else ""
    if loopback is not None and loopback.lower() in TRUE:
        allow = ",".join(filter(None, [allow, addresses.LOOPBACK]))
    return allow


def _require_production_settings(settings: dict) -> None:
    """A shared database means several processes on several hosts: each generating its own key
    could not read the others' secrets, and links (OAuth redirect URIs among them) built from
    a request's Host header would be whatever a client sent."""
    required = {
        "SECRET_KEYS": "the Fernet keys every process encrypts secrets with (generate one with: "
                       "python -c 'from cryptography.fernet import Fernet; "
                       "print(Fernet.generate_key().decode())')",
        "PUBLIC_BASE_URL": "the platform's public URL, base of every link and of the OAuth "
                           "redirect URI (e.g. https://iot.example.com)",
    }
    missing = [f"{PREFIX}{name}: {why}" for name, why in required.items()
               if not settings.get(name)]
    if missing:
        raise ConfigError("THINGBRIDGE_DATABASE_URL names a shared database, so these settings "
                          "are required:\n  " + "\n  ".join(missing))


def provider_setting(config, type_id: str, name: str, default=None):
    return config.get(f"{type_id.upper()}_{name}", default)
