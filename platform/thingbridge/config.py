"""Settings from ``THINGBRIDGE_*`` environment variables, with embedded-mode defaults.

Every setting has a type, a range and a default in ``Settings``; a value outside them, or two
settings that contradict each other, stop the process at start with a message naming each
(``ConfigError``) instead of a traceback later or a silent misbehaviour.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validates_schema,
)
from marshmallow.validate import OneOf, Range

from thingbridge.crypto import SecretKeyError, parse_keys
from thingbridge.db import supported_scheme
from thingbridge.http import addresses
from thingbridge.outbox import publishers
from thingbridge.outbox.publishers.base import ATTEMPT as PUBLISH_ATTEMPT
from thingbridge.outbox.publishers.base import TURN_WAIT

PREFIX = "THINGBRIDGE_"
PROVIDER_SETTINGS = ("_BASE_URL", "_POLL_INTERVAL", "_RATE_LIMIT", "_PKCE", "_SIMULATOR_PORT")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
# Longest a webhook sender goes between renewals of its lane's lease beyond one attempt: it
# records a run of sent deliveries at the latest this long after the run began.
WEBHOOK_RUN_SECONDS = 1.0


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
    """A setting production cannot run without, or one out of range (the message says which
    and why)."""


def _refusing(check, errors: type[Exception] | tuple = ValueError):
    """A field's validator: ``check(value)`` raising one of ``errors`` refuses the value with
    its message."""
    def validate(value) -> None:
        try:
            check(value)
        except errors as exc:
            raise ValidationError(str(exc)) from None
    return validate


def _broker_urls(setting: str) -> None:
    try:
        for url in publishers.parse(setting):
            urlsplit(url).port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:  # the line names the variable already
        raise ValueError(str(exc).removeprefix("EVENT_BROKERS: ")) from None


def shown(name: str, value) -> str:
    """A setting's value for an error line, which ends up in logs: no key, no password (in
    any URL of it, one that does not even parse included)."""
    if name == "SECRET_KEYS":
        return "<hidden>"
    return re.sub(r"(://[^:/@,]*):[^@/,]*@", r"\1:***@", str(value))


def _seconds(default: float, minimum: float = 0.0, **kwargs) -> fields.Float:
    """A duration in seconds, longer than ``minimum`` (NaN and infinity refused)."""
    return fields.Float(load_default=float(default),
                        validate=Range(min=minimum, min_inclusive=False), **kwargs)


def _http_url(url: str) -> None:
    """An absolute http(s) URL. Not fields.Url's check: host names with an underscore (a
    container's service name, ``netatmo_sim``) are names a resolver takes."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Not a valid URL: an absolute http:// or https:// URL.")


def _count(default: int, minimum: int = 0, **kwargs) -> fields.Integer:
    return fields.Integer(load_default=default, strict=False, validate=Range(min=minimum),
                          **kwargs)


class Settings(Schema):
    """The settings read from the environment; a field's name is its variable's without the
    ``THINGBRIDGE_`` prefix. 0 turns a limit (a count per minute or per app) off."""

    class Meta:
        unknown = EXCLUDE

    DATABASE_URL = fields.String(load_default=None, validate=_refusing(supported_scheme))
    # PostgreSQL connections per process (0: one per thread that uses the database;
    # `thingbridge api` sets it to the gunicorn threads), how long opening one (or waiting
    # for a free one) may take, and the name they show in pg_stat_activity.
    DATABASE_POOL_SIZE = _count(0)
    DATABASE_CONNECT_TIMEOUT = _seconds(5)
    # Seconds one PostgreSQL statement may run, lock waits included (0: no bound). `thingbridge
    # api` sets 10: a request stuck behind a lock held elsewhere answers 503 DATABASE_BUSY
    # instead of holding its worker until gunicorn ends it.
    DATABASE_STATEMENT_TIMEOUT = fields.Float(load_default=0.0, validate=Range(min=0))
    DATABASE_APPLICATION_NAME = fields.String(load_default="thingbridge")
    BROKER_URL = fields.String(load_default="filesystem://")
    # Comma-separated Fernet keys, newest first: rotation adds a key in front and
    # `thingbridge rotate-secrets` re-encrypts every row with it.
    SECRET_KEYS = fields.String(load_default=None,
                                validate=_refusing(parse_keys, SecretKeyError))
    PUBLIC_BASE_URL = fields.String(load_default=None, validate=_http_url)
    # Flask refuses a larger request body with 413 (in the standard error body).
    MAX_CONTENT_LENGTH = _count(1024 * 1024, minimum=1024, data_key="MAX_BODY")
    TOKEN_EXPIRES_IN = _count(3600, minimum=1)
    # Seconds an API process trusts a bearer token it read (0: read it on every request):
    # the most a revocation or an app disabled elsewhere takes to reach every process.
    TOKEN_CACHE_SECONDS = fields.Float(load_default=5.0, validate=Range(min=0))
    OAUTH_STATE_TTL = _count(600, minimum=1)
    DISPATCH_INTERVAL = _seconds(5)
    DISPATCH_BATCH = _count(500, minimum=1)
    # Seconds a started poll or action delivery holds its row against a second worker: a
    # worker that dies mid-task delays that work by at most this. Longer than a task takes.
    TASK_LEASE = _seconds(60)
    HTTP_TIMEOUT = _seconds(10)
    # An action not COMPLETED/FAILED this many seconds after it was triggered fails (timeout).
    ACTION_TIMEOUT = _count(60, minimum=1)
    # Redis/SQS only: how long an unacknowledged task waits before another worker gets it
    # (a worker killed mid-poll). Longer than the slowest task, shorter than patience.
    BROKER_VISIBILITY_TIMEOUT = _count(300, minimum=1)
    # Events: how often beat moves the outbox to webhooks and brokers, and how long they
    # stay readable (GET /api/v1/events, replay) after every delivery module is done.
    EVENT_PUMP_INTERVAL = _seconds(1)
    EVENT_RETENTION_DAYS = _seconds(7)
    # Comma-separated broker URLs that receive every event: amqp://, redis://, mqtt://.
    EVENT_BROKERS = fields.String(load_default="", validate=_refusing(_broker_urls))
    # Seconds a publish task holds one (broker, app) before another may take it over.
    PUBLISHER_LEASE = _seconds(60)
    # Webhooks: first retry delay (doubling), give-up age, per-attempt timeout, lease.
    WEBHOOK_RETRY_BASE = _seconds(10)
    WEBHOOK_MAX_AGE = _seconds(3 * 24 * 3600)
    # None: THINGBRIDGE_OUTBOUND_TIMEOUT's (after loading, in _webhooks_take_the_callbacks).
    WEBHOOK_TIMEOUT = fields.Float(load_default=None, validate=Range(min=0, min_inclusive=False))
    # Sending to apps' URLs (README "Running it safely"): the whole-attempt deadline of an
    # action callback, and the CIDR ranges outside the public internet that may be reached
    # (default: loopback in the embedded mode, none otherwise).
    OUTBOUND_TIMEOUT = _seconds(10)
    WEBHOOK_LEASE = _seconds(60)
    # Lanes one app's webhooks may hold at once (each takes a worker thread while it sends).
    WEBHOOK_APP_CONCURRENCY = _count(4)
    WEBHOOK_SECRET_OVERLAP = fields.Float(load_default=24 * 3600.0, validate=Range(min=0))
    # Fair share between apps (README "Running it safely").
    TOKEN_REQUESTS_PER_MINUTE = _count(300)
    ACTION_TRIGGERS_PER_MINUTE = _count(6000)
    WRITES_PER_MINUTE = _count(6000)
    INSTANCE_CHECKS_PER_MINUTE = _count(30)
    # Requests of the API's processes waiting on an outside server at once (a provider's call,
    # a registered URL's name lookup): one that hangs holds no more workers than this.
    # `thingbridge api` sets it to its workers x threads - 1 (api/outside_calls.py).
    API_OUTSIDE_CALLS = _count(0)
    # The API makes the first attempt of a connector thing's action itself when one of those
    # slots is free (actions/delivery.py); off: workers make every attempt.
    ACTIONS_IN_API = fields.Boolean(load_default=True)
    WEBHOOKS_PER_APP = _count(100)
    REPLAYS_IN_FLIGHT = _count(5)
    THINGS_PER_SUBJECT = _count(10000)
    PROPERTIES_PER_SUBJECT = _count(50000)
    ACTION_APP_CONCURRENCY = _count(4)
    # Operations: log lines as text or json; a bearer token GET /metrics requires (if set).
    LOG_FORMAT = fields.String(load_default="text", validate=OneOf(["text", "json"]))
    METRICS_TOKEN = fields.String(load_default=None)
    # The console's session cookie lifetime, seconds.
    CONSOLE_SESSION_LIFETIME = _count(12 * 3600, minimum=1)

    @pre_load
    def _read_as_written(self, data: dict, **kwargs) -> dict:
        # An empty variable (a blank line in an env file) means the default.
        data = {name: value for name, value in data.items() if value != ""}
        if isinstance(data.get("LOG_FORMAT"), str):
            data["LOG_FORMAT"] = data["LOG_FORMAT"].lower()
        return data

    @validates_schema
    def _leases_outlast_their_work(self, data: dict, **kwargs) -> None:
        # A lease that ends while its holder still sends hands the same work to a second
        # sender: a webhook lane sent twice and out of order, an action callback twice.
        problems = {}
        webhook_timeout = _webhook_timeout(data)
        if data["WEBHOOK_LEASE"] <= webhook_timeout + WEBHOOK_RUN_SECONDS:
            problems["WEBHOOK_LEASE"] = [
                f"must be longer than THINGBRIDGE_WEBHOOK_TIMEOUT ({webhook_timeout:g}) "
                f"plus {WEBHOOK_RUN_SECONDS:g} s, or a lane's sender loses it while a receiver "
                "is still answering and a second sender sends the same events"]
        # The attempt, the wait for its turn, and a few seconds for its database round trips.
        publish_takes = PUBLISH_ATTEMPT + TURN_WAIT + 5
        if data["PUBLISHER_LEASE"] <= publish_takes:
            problems["PUBLISHER_LEASE"] = [
                f"must be longer than a publish attempt may take with the wait for its turn "
                f"({publish_takes:g} s), or a second publisher takes a broker's events over "
                "while the first still sends"]
        if data["TASK_LEASE"] <= data["OUTBOUND_TIMEOUT"]:
            problems["TASK_LEASE"] = [
                f"must be longer than THINGBRIDGE_OUTBOUND_TIMEOUT "
                f"({data['OUTBOUND_TIMEOUT']:g}), or an action callback still waiting for its "
                "answer is sent again by another worker"]
        if problems:
            raise ValidationError(problems)

    @post_load
    def _webhooks_take_the_callbacks(self, data: dict, **kwargs) -> dict:
        return {**data, "WEBHOOK_TIMEOUT": _webhook_timeout(data)}


def _webhook_timeout(data: dict) -> float:
    """A webhook attempt's timeout: its own, else an action callback's."""
    own = data.get("WEBHOOK_TIMEOUT")
    return data["OUTBOUND_TIMEOUT"] if own is None else own


class ProviderSettings(Schema):
    """``THINGBRIDGE_<TYPE>_*``: one provider's address and cadence; what is not set is the
    connector's own."""

    BASE_URL = fields.String(validate=_http_url)
    POLL_INTERVAL = fields.Integer(strict=False, validate=Range(min=1))
    RATE_LIMIT = fields.Integer(strict=False, validate=Range(min=0))
    PKCE = fields.String(validate=OneOf(TRUE + FALSE))
    SIMULATOR_PORT = fields.Integer(strict=False, validate=Range(min=0, max=65535))

    @pre_load
    def _lower(self, data: dict, **kwargs) -> dict:
        if isinstance(data.get("PKCE"), str):
            data["PKCE"] = data["PKCE"].lower()
        return data


def _checked(schema: Schema, values: dict, prefix: str, problems: list[str]) -> dict:
    """``values`` loaded by ``schema``; what is wrong with them appended to ``problems``, one
    line per variable with the value it has (or its default)."""
    try:
        return schema.load(values)
    except ValidationError as exc:
        by_key = {field.data_key or name: field for name, field in schema.fields.items()}
        for key, why in sorted(exc.normalized_messages().items()):
            default = by_key[key].load_default
            value = shown(key, values[key]) if key in values else \
                f"{format(default, 'g') if isinstance(default, float) else default} (default)"
            problems.append(f"{PREFIX}{prefix}{key}={value}: {' '.join(map(str, why))}")
        return {}


def _provider_settings(problems: list[str]) -> dict:
    """THINGBRIDGE_<TYPE>_BASE_URL, _POLL_INTERVAL, _RATE_LIMIT, _PKCE and _SIMULATOR_PORT
    (``thingbridge run``), checked per provider."""
    by_type: dict[str, dict] = {}
    general = {PREFIX + (field.data_key or name) for name, field in Settings().fields.items()}
    for key, value in os.environ.items():
        if key.startswith(PREFIX) and key.endswith(PROVIDER_SETTINGS) and value != "" \
                and key not in general:  # PUBLIC_BASE_URL is not a provider's
            name = next(s for s in PROVIDER_SETTINGS if key.endswith(s))
            by_type.setdefault(key[len(PREFIX):-len(name)], {})[name[1:]] = value
    settings = {}
    for type_id, values in sorted(by_type.items()):
        loaded = _checked(ProviderSettings(), values, f"{type_id}_", problems)
        settings.update({f"{type_id}_{name}": value for name, value in loaded.items()})
    return settings


def load_settings(overrides: dict | None = None) -> dict:
    """The Flask config mapping: every setting the platform, workers and connectors read,
    checked with ``overrides`` (the code's own, tests') applied over the environment."""
    schema, overrides = Settings(), dict(overrides or {})
    written_as = {name: field.data_key or name for name, field in schema.fields.items()}
    values = {written: os.environ[PREFIX + written] for written in written_as.values()
              if PREFIX + written in os.environ}
    values.update({written_as[name]: overrides.pop(name) for name in list(overrides)
                   if name in written_as})
    problems: list[str] = []
    settings = {**_checked(schema, values, "", problems), **_provider_settings(problems),
                **overrides}
    settings["DATABASE_URL"] = settings.get("DATABASE_URL") or \
        f"sqlite:///{var_dir() / 'thingbridge.db'}"
    embedded = settings["DATABASE_URL"].startswith("sqlite")
    settings.setdefault("OUTBOUND_ALLOW", _outbound_allow(embedded))
    try:
        addresses.parse_allow(settings["OUTBOUND_ALLOW"])
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("settings that cannot be used:\n  " + "\n  ".join(problems))
    if not embedded:
        _require_production_settings(settings)
    elif not settings["SECRET_KEYS"]:
        settings["SECRET_KEYS"] = _dev_secret_keys()
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
