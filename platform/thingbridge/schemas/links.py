"""Absolute links to the API's own resources, one schema per linked resource: each reads the
URL's values from the object it is given, e.g. ``ThingLink().dump(thing)``."""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, urlsplit

from flask import current_app, url_for
from marshmallow import Schema, fields

from thingbridge.schemas.compiled import attribute_getter


def external_url(endpoint: str, **values) -> str:
    """The absolute URL of one of our endpoints: under ``THINGBRIDGE_PUBLIC_BASE_URL`` when set
    (a proxy's scheme, host and path prefix), else where the request came in."""
    app = current_app._get_current_object()
    base = app.config.get("PUBLIC_BASE_URL")
    if not base:
        return url_for(endpoint, _external=True, **values)
    return _template(app.url_map, base, endpoint, tuple(values))(values)


@functools.lru_cache(maxsize=8)
def _adapter(url_map, base: str):
    """The URL map bound to the public base URL once, not once per link (a list of things
    builds dozens); building URLs with it reads nothing that changes."""
    parts = urlsplit(base)
    return url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)


# What werkzeug's path converters leave unquoted in a value (BaseConverter.to_url), and a
# value made only of such characters (ids are), which needs no quoting at all.
_SEGMENT_SAFE = "!$&'()*+,/:;=@"
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~!$&'()*+,/:;=@-]*")
_PROBE = "a b/%\u00fc?#\"'"  # a value every converter that shares that quoting must quote


@functools.lru_cache(maxsize=64)
def _template(url_map, base: str, endpoint: str, names: tuple[str, ...]):
    """``values -> URL`` for one endpoint: the URL built once by werkzeug with a marker per
    value, then each value quoted into its place, a fraction of a full build per link. If the
    endpoint's converters take no such marker or quote otherwise (checked with a probe value),
    werkzeug builds each."""
    adapter = _adapter(url_map, base)

    def build(values):
        return adapter.build(endpoint, values, force_external=True)

    markers = {name: f"_link_value_{i}_" for i, name in enumerate(names)}
    try:
        pieces = re.split("(" + "|".join(markers.values()) + ")", build(markers))
    except ValueError:  # a converter that takes no text, such as int
        return build
    by_marker = {marker: name for name, marker in markers.items()}
    slots = [by_marker.get(piece) for piece in pieces[1::2]]
    if sorted(slots, key=str) != sorted(names):
        return build
    head, tails = pieces[0], pieces[2::2]

    def fill(values):
        url = head
        for name, tail in zip(slots, tails, strict=True):
            value = str(values[name])
            url += (value if _UNQUOTED.fullmatch(value) else quote(value, safe=_SEGMENT_SAFE)
                    ) + tail
        return url

    probe = dict.fromkeys(names, _PROBE)
    return fill if fill(probe) == build(probe) else build


def link(endpoint: str, **attributes: str) -> fields.Function:
    """The URL of ``endpoint``, its values read from the object's ``attributes`` (dotted paths
    reach related objects)."""
    getters = [(key, attribute_getter(attribute)) for key, attribute in attributes.items()]
    return fields.Function(
        lambda obj: external_url(endpoint, **{key: get(obj) for key, get in getters}),
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
