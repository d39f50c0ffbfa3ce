"""What a connector mapped from a provider's answer, made storable before it is compared or
written.

A display text (a name, a type, a unit, a value, an attribute) that cannot be stored as the
provider sent it, because it holds a NUL character or a lone surrogate or is longer than its
column, is stored mended: each such character becomes U+FFFD and the text is cut to the column,
with a warning in the log. The end user sees their device with an odd name rather than not at
all, and nothing else of the client stops. An id is how a thing, component or property is found
again, so none is guessed: one that is not a valid id fails the poll as a transient failure
(nothing written, nothing deleted), with the reason on the client.
"""

from __future__ import annotations

import logging

from thingbridge.connectors.contract import Connector, ThingSpec
from thingbridge.connectors.plugin_call import PluginFailed
from thingbridge.models import Component, Property, Thing, ThingMapping
from thingbridge.schemas.common import MAX_VALUE, storable, unstorable
from thingbridge.schemas.things import ID_PATTERN

log = logging.getLogger(__name__)


def fit(connector: Connector, specs: list[ThingSpec]) -> list[ThingSpec]:
    """``specs``, mended in place; raises PluginFailed for an id that is not one."""
    for thing in specs:
        _check_id(connector, "thing id", thing.connector_thing_id,
                  ThingMapping.connector_thing_id.max_length, pattern=False)
        _check_id(connector, "main component id", thing.main_component_id)
        thing.name = _text(thing.name, Thing.name.max_length)
        thing.manufacturer = _text(thing.manufacturer, Thing.manufacturer.max_length)
        thing.display_type = _text(thing.display_type, Thing.display_type.max_length)
        thing.attributes = {_text(str(key), MAX_VALUE): _text(str(value), MAX_VALUE)
                            for key, value in thing.attributes.items()}
        for component in thing.components:
            _check_id(connector, "component id", component.id)
            component.name = _text(component.name, Component.name.max_length)
            component.component_type = _text(component.component_type,
                                             Component.component_type.max_length)
            component.capabilities = [_text(str(c), MAX_VALUE) for c in component.capabilities]
            for prop in component.properties:
                _check_id(connector, "property id", prop.id)
                prop.name = _text(prop.name, Property.name.max_length)
                if prop.value is not None:  # None: not reported, the stored value stays
                    prop.value = _text(prop.value, MAX_VALUE)
                prop.unit = _text(prop.unit, Property.unit.max_length)
                prop.property_type = _text(prop.property_type,
                                           Property.property_type.max_length)
            for action in component.actions:
                _check_id(connector, "action id", action.id)
                for parameter in action.parameters:
                    _check_id(connector, "action parameter", parameter.name)
    return specs


def _check_id(connector: Connector, what: str, value, limit: int = 200,
              pattern: bool = True) -> None:
    valid = isinstance(value, str) and (
        ID_PATTERN.fullmatch(value) if pattern
        else 0 < len(value) <= limit and unstorable(value) is None)
    if not valid:
        shown = repr(value)[:60]
        raise PluginFailed(f"the {connector.type_id} connector mapped an invalid {what}: "
                           f"{shown}")


def _text(value, limit: int) -> str:
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    mended = storable(value, limit)
    if mended != value:
        log.warning("a provider's text was mended to be stored (%d characters): %r",
                    len(value), mended[:80])
    return mended
