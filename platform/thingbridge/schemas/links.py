"""Absolute links to the API's own resources, one schema per linked resource: each reads the
URL's values from the object it is given, e.g. ``ThingLink().dump(thing)``."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import current_app, url_for
from marshmallow import Schema, fields
from marshmallow.utils import get_value


def external_url(endpoint: str, **values) -> str:
    """The absolute URL of one of our endpoints: under ``THINGBRIDGE_PUBLIC_BASE_URL`` when set
    (a proxy's scheme, host and path prefix), else where the request came in."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        return url_for(endpoint, _external=True, **values)
    return _adapter(current_app.url_map, base).build(endpoint, values, force_external=True)


@functools.lru_cache(maxsize=8)
def _adapter(url_map, base: str):
    """The URL map bound to the public base URL once, not once per link (a list of things
    builds dozens); building URLs with it reads nothing that changes."""
    parts = urlsplit(base)
    return url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)


def link(endpoint: str, **attributes: str) -> fields.Function:
    """The URL of ``endpoint``, its values read from the object's ``attributes`` (dotted paths
    reach related objects)."""
    return fields.Function(
        lambda obj: external_url(endpoint, **{key: get_value(obj, attribute)
                                              for key, attribute in attributes.items()}),
        required=True, metadata={"type": "string", "format": "uri",
                                 "description": "Absolute URL of the resource"})


class DescriptionLink(Schema):
    href = link("descriptions.description", description_id="id")


class InstanceLink(Schema):
    href = link("instances.instance", instance_id="id")


class ClientLink(Schema):
    href = link("clients.client", client_id="id")


class ThingLink(Schema):
    href = link("things.thing", thing_id="id")


class ComponentLink(Schema):
    href = link("things.component", thing_id="thing_id", component_id="component_id")


class PropertyLink(Schema):
    href = link("things.property", thing_id="component.thing_id",
                component_id="component.component_id", property_id="property_id")


class ConnectorActionsLink(Schema):
    """An app's signed connector-actions endpoint (its unguessable token in the path)."""

    href = link("connector_actions.perform_action", token="callback_token")
