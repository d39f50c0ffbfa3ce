"""The connector contract: everything a provider plugin implements or raises, in one place.

A plugin is a class registered in the ``thingbridge.connectors`` entry-point group. It talks to
its provider and maps payloads to thing specs; it never persists tokens or schedules anything.
The host owns token refresh, storage, rate budgets, scheduling and thing upserts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

import marshmallow as ma
import requests

from thingbridge.schemas.common import storable

ENTRY_POINT_GROUP = "thingbridge.connectors"

PropertyKind = Literal["NUMBER", "STRING", "BOOLEAN"]
ThingStatus = Literal["AVAILABLE", "UNAVAILABLE", "UNKNOWN"]


# --- errors: how a plugin tells the host what went wrong -------------------------------------


# The longest reason kept: it is stored on the client or request, shown by the API and sent in
# events, and a provider's error text (which a reason often quotes) has no bound of its own.
MAX_REASON = 500


class ConnectorError(Exception):
    """Base class; ``reason`` is safe to show to the app developer."""

    def __init__(self, reason: str):
        reason = storable(str(reason), MAX_REASON)
        super().__init__(reason)
        self.reason = reason


class TransientError(ConnectorError):
    """5xx, timeouts, throttling: try again later; the client's status is kept."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class TokenRejected(TransientError):
    """The provider refused an access token the host thought valid (revoked early, clock skew).
    The host refreshes it once and calls again; a second refusal backs off like any transient
    error."""

    def __init__(self, reason: str):
        super().__init__(reason, retry_after=0)


class ReauthRequired(ConnectorError):
    """The grant is gone (invalid_grant, revoked): the client goes to ERROR until re-consent."""


class ConfigError(ConnectorError):
    """The instance or client configuration is wrong (bad key, unknown location)."""


class InstanceRefused(ConfigError):
    """The provider refused the instance's own credentials (the OAuth client's secret rotated,
    the app key revoked, the application deactivated): every client of the instance fails
    alike, and no end user's consent repairs it. The host says so on the client, and the app
    fixes the instance (``PATCH /connectors/instances/{id}``), which starts those clients
    again."""


class ActionError(ConnectorError):
    """The provider refused an action for a reason the caller can fix (bad parameter)."""


def json_object(resp: requests.Response) -> dict | None:
    """The answer's body if it is a JSON object, else None: what a plugin reads a provider's
    answer with (a list, a number or a proxy's HTML page is no answer to read)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# --- thing specs: what map_things returns ------------------------------------------------------


@dataclass
class PropertySpec:
    id: str
    # None: the provider did not report it this time (a device out of reach): the stored value
    # stays as it is, and a property not stored yet is not created.
    value: str | None
    type: PropertyKind = "NUMBER"
    name: str = ""
    unit: str = ""
    property_type: str = ""  # semantic type, e.g. "TEMPERATURE"


@dataclass
class ActionParameterSpec:
    name: str
    type: PropertyKind = "STRING"
    required: bool = False


@dataclass
class ActionSpec:
    id: str
    parameters: list[ActionParameterSpec] = field(default_factory=list)


@dataclass
class ComponentSpec:
    id: str
    name: str = ""
    component_type: str = ""
    capabilities: list[str] = field(default_factory=list)
    properties: list[PropertySpec] = field(default_factory=list)
    actions: list[ActionSpec] = field(default_factory=list)


@dataclass
class ThingSpec:
    connector_thing_id: str  # stable provider-side id; the host keys ThingMapping on it
    name: str
    main_component_id: str
    components: list[ComponentSpec]
    manufacturer: str = ""
    display_type: str = ""
    status: ThingStatus = "AVAILABLE"
    attributes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- auth declarations ------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuth2Endpoints:
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    pkce: bool = False


@dataclass
class ClientContext:
    """What the host hands a plugin for one call: decrypted configs and a fresh access token."""

    instance_config: dict[str, Any]
    client_config: dict[str, Any]
    access_token: str | None = None


# --- the plugin base class --------------------------------------------------------------------


class Connector:
    """Base class of every connector plugin. Subclasses set the class attributes and implement
    ``check``, ``fetch``, ``map_things`` and (if they declare actions) ``perform_action``."""

    type_id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    logo: ClassVar[str] = ""
    instance_schema: ClassVar[type[ma.Schema]]
    client_schema: ClassVar[type[ma.Schema]]
    sample_instance_configuration: ClassVar[dict[str, Any]] = {}
    sample_client_configuration: ClassVar[dict[str, Any]] = {}
    # Keys a configuration schema does not know are ignored, with a warning to the app, as the
    # connctd API did; a connector lists here the configurations ("instance", "client") where
    # an unknown key is an error instead.
    strict_configuration: ClassVar[tuple[str, ...]] = ()
    auth_kind: ClassVar[Literal["api_key", "oauth2"]] = "api_key"
    default_base_url: ClassVar[str]
    poll_interval: ClassVar[int] = 300  # seconds between successful polls of one client
    rate_limit_per_minute: ClassVar[int | None] = None  # provider budget per instance (app key)
    # "module:factory" of a WSGI simulator of the provider, for the embedded demo and tests.
    simulator: ClassVar[str | None] = None

    def __init__(self, base_url: str | None = None, session: requests.Session | None = None,
                 timeout: float = 10.0):
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    # OAuth2 connectors override; the host runs the redirect, code exchange and refresh.
    def oauth2_endpoints(self) -> OAuth2Endpoints | None:
        return None

    def check(self, instance_config: dict[str, Any]) -> None:
        """One cheap real call proving the instance configuration works; raise ConfigError."""
        raise NotImplementedError

    def fetch(self, ctx: ClientContext) -> dict[str, Any]:
        """Raw provider payloads for one client. Raise TransientError/ReauthRequired/ConfigError."""
        raise NotImplementedError

    def map_things(self, payload: dict[str, Any], client_config: dict[str, Any]) -> list[ThingSpec]:
        """Pure: payload -> thing specs. No I/O, no clock reads."""
        raise NotImplementedError

    def perform_action(self, ctx: ClientContext, connector_thing_id: str, component_id: str,
                       action_id: str, parameters: dict[str, str]) -> None:
        """Route an action to the provider. Raise ActionError for a refusal the caller caused."""
        raise ActionError(f"{self.type_id} does not support action {action_id!r}")


def load_connectors() -> dict[str, type[Connector]]:
    """Every connector class registered under the entry-point group, keyed by type_id."""
    found: dict[str, type[Connector]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise TypeError(f"entry point {ep.name!r} is not a thingbridge Connector subclass")
        if cls.type_id != ep.name:
            raise TypeError(f"entry point {ep.name!r} declares type_id {cls.type_id!r}")
        found[ep.name] = cls
    return dict(sorted(found.items()))
