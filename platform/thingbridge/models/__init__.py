"""All tables, in dependency order (migrations and tests create them in this order)."""

from thingbridge.models.actions import ACTION_STATUSES, ActionRequest
from thingbridge.models.apps import ALL_SCOPES, AccessToken, App, token_hash
from thingbridge.models.connectors import (
    CLIENT_STATUSES,
    ConnectorClient,
    ConnectorDescription,
    ConnectorInstance,
    OAuthState,
    RateBudget,
)
from thingbridge.models.things import (
    PROPERTY_TYPES,
    THING_STATUSES,
    Action,
    Component,
    Property,
    Thing,
    ThingMapping,
)

ALL_MODELS = [
    App, AccessToken, ConnectorDescription, ConnectorInstance, ConnectorClient, OAuthState,
    RateBudget, Thing, Component, Property, Action, ThingMapping, ActionRequest,
]

__all__ = [
    "ACTION_STATUSES", "ALL_MODELS", "ALL_SCOPES", "CLIENT_STATUSES", "PROPERTY_TYPES",
    "THING_STATUSES", "AccessToken", "Action", "ActionRequest", "App", "Component",
    "ConnectorClient", "ConnectorDescription", "ConnectorInstance", "OAuthState", "Property",
    "RateBudget",    "Thing", "ThingMapping", "token_hash",
]
