"""All tables, in dependency order (migrations and tests create them in this order)."""

from thingbridge.models.actions import ACTION_STATUSES, ActionRequest
from thingbridge.models.apps import (
    ALL_SCOPES,
    APP_PLAIN,
    AccessToken,
    App,
    ConsoleSession,
    token_hash,
)
from thingbridge.models.connectors import (
    CLIENT_STATUSES,
    ConnectorClient,
    ConnectorDescription,
    ConnectorInstance,
    OAuthState,
    PollTally,
    RateBudget,
)
from thingbridge.models.events import Event, EventCounter, PublisherCursor
from thingbridge.models.limits import RateWindow
from thingbridge.models.things import (
    PROPERTY_TYPES,
    THING_STATUSES,
    Action,
    Component,
    Property,
    Thing,
    ThingMapping,
)
from thingbridge.models.webhooks import (
    DELIVERY_STATUSES,
    ENDPOINT_PLAIN,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

ALL_MODELS = [
    App, AccessToken, ConnectorDescription, ConnectorInstance, ConnectorClient, OAuthState,
    RateBudget, PollTally, Thing, Component, Property, Action, ThingMapping, ActionRequest,
    EventCounter, Event, PublisherCursor, WebhookEndpoint, WebhookDelivery, WebhookAttempt,
    RateWindow, ConsoleSession,
]

__all__ = [
    "ACTION_STATUSES", "ALL_MODELS", "ALL_SCOPES", "APP_PLAIN", "AccessToken", "Action",
    "ActionRequest", "App", "ConsoleSession",
    "CLIENT_STATUSES", "Component", "ConnectorClient", "ConnectorDescription", "ConnectorInstance",
    "DELIVERY_STATUSES", "ENDPOINT_PLAIN", "Event", "EventCounter", "OAuthState",
    "PROPERTY_TYPES", "Property",
    "PollTally", "PublisherCursor", "RateBudget", "RateWindow", "THING_STATUSES", "Thing",
    "ThingMapping",
    "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint", "token_hash",
]
