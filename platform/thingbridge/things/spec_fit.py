"""What a connector mapped from a provider's answer, made storable before it is compared or
written.

A display text (a name, a type, a unit, a value, an attribute) that cannot be stored as the
provider sent it, because it holds a NUL character or a lone surrogate or is longer than its
column, is stored mended: each such character becomes U+FFFD and the text is cut to the column,
with a warning in the log. The end user sees their device with an odd name rather than not at
all, and nothing else of the client stops. An id is how a thing, component or property is found
again, so none is guessed: one that is not a valid id (a thing's: printable text up to its
column; the others: the documented id pattern) fails the poll as a transient failure (nothing
written, nothing deleted), with the reason on the client. A thing, component, property or
action listed twice is taken once, the first.
"""

from __future__ import annotations

import logging

from thingbridge.connectors.contract import Connector, ThingSpec
from thingbridge.connectors.plugin_call import PluginFailed
from thingbridge.models import Component, Property, Thing, ThingMapping
from thingbridge.schemas.common import MAX_VALUE, UNSTORABLE_CHARACTER, storable
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
                _mend_property(prop)
            for action in component.actions:
                _check_id(connector, "action id", action.id)
                for parameter in action.parameters:
                    _check_id(connector, "action parameter", parameter.name)
                action.parameters = _first_of_each(action.parameters, "name")
            component.properties = _first_of_each(component.properties, "id")
            component.actions = _first_of_each(component.actions, "id")
        thing.components = _first_of_each(thing.components, "id")
    return _first_of_each(specs, "connector_thing_id")


def _first_of_each(items: list, key: str) -> list:
    """``items`` with one per ``key``, the first: a device a provider lists twice (a room
    under two entries) would be written twice, which the database refuses."""
    ids = [getattr(item, key) for item in items]
    if len(set(ids)) == len(ids):
        return items
    log.warning("a provider's answer listed the same %s more than once", key)
    seen: set = set()
    return [item for item, id_ in zip(items, ids, strict=True)
            if not (id_ in seen or seen.add(id_))]


# A property's texts and their columns.
_PROPERTY_TEXTS = (("name", Property.name.max_length), ("unit", Property.unit.max_length),
                   ("property_type", Property.property_type.max_length), ("value", MAX_VALUE))


def _mend_property(prop) -> None:
    for name, limit in _PROPERTY_TEXTS:
        value = getattr(prop, name)
        if value is not None or name != "value":  # None: not reported, the stored value stays
            setattr(prop, name, _text(value, limit))


def _check_id(connector: Connector, what: str, value, limit: int = 200,
              pattern: bool = True) -> None:
    valid = isinstance(value, str) and (
        ID_PATTERN.fullmatch(value) if pattern
        else 0 < len(value) <= limit and value.isprintable())
    if not valid:
        shown = repr(value)[:60]
        raise PluginFailed(f"the {connector.type_id} connector mapped an invalid {what}: "
                           f"{shown}")


def _text(value, limit: int) -> str:
    if type(value) is str and len(value) <= limit and UNSTORABLE_CHARACTER.search(value) is None:
        return value  # nearly every text
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    mended = storable(value, limit)
    if mended != value:
        log.warning("a provider's text was mended to be stored (%d characters): %r",
                    len(value), mended[:80])
    return mended
