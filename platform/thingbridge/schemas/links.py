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
    return _external(endpoint, tuple(values), list(values.values()))


def _external(endpoint: str, names: tuple[str, ...], values: list) -> str:
    """:func:`external_url` with the values given in the order of ``names`` (a link fills
    dozens per answer without building keyword arguments for each)."""
    app = current_app._get_current_object()
    base = app.config.get("PUBLIC_BASE_URL")
    if not base:
        return url_for(endpoint, _external=True, **dict(zip(names, values, strict=True)))
    return _template(app.url_map, base, endpoint, names)(values)


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
    """``values -> URL`` for one endpoint, the values given in the order of ``names``: the URL
    built once by werkzeug with a marker per value, then each value quoted into its place, a
    fraction of a full build per link. If the endpoint's converters take no such marker or
    quote otherwise (checked with a probe value), werkzeug builds each."""
    adapter = _adapter(url_map, base)

    def build(values):
        return adapter.build(endpoint, dict(zip(names, values, strict=True)),
                             force_external=True)

    markers = [f"_link_value_{i}_" for i in range(len(names))]
    try:
        pieces = re.split("(" + "|".join(markers) + ")", build(markers))
    except ValueError:  # a converter that takes no text, such as int
        return build
    slots = [markers.index(piece) if piece in markers else None for piece in pieces[1::2]]
    if sorted(slots, key=str) != sorted(range(len(names)), key=str):
        return build
    head, steps = pieces[0], list(zip(slots, pieces[2::2], strict=True))
    unquoted = _UNQUOTED.fullmatch

    def fill(values):
        url = head
        for slot, tail in steps:
            value = values[slot]
            if value.__class__ is not str:
                value = str(value)
            url += (value if unquoted(value) else quote(value, safe=_SEGMENT_SAFE)) + tail
        return url

    probe = [_PROBE] * len(names)
    return fill if fill(probe) == build(probe) else build


def link(endpoint: str, **attributes: str) -> fields.Function:
    """The URL of ``endpoint``, its values read from the object's ``attributes`` (dotted paths
    reach related objects)."""
    names = tuple(attributes)
    getters = [attribute_getter(attribute) for attribute in attributes.values()]

    def href(obj) -> str:
        return _external(endpoint, names, [get(obj) for get in getters])

    return fields.Function(href, required=True, metadata={
        "type": "string", "format": "uri", "description": "Absolute URL of the resource"})


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
