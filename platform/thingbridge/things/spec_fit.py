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
import re

from thingbridge.connectors.contract import Connector, ThingSpec
from thingbridge.connectors.plugin_call import PluginFailed
from thingbridge.models import Component, Property, Thing, ThingMapping
from thingbridge.schemas.common import MAX_VALUE, storable, unstorable
from thingbridge.schemas.things import ID_PATTERN

log = logging.getLogger(__name__)
# What schemas.common.unstorable refuses in text, found in one pass (a poll has hundreds).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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
                if not _plain(prop):
                    _mend_property(prop)
            for action in component.actions:
                _check_id(connector, "action id", action.id)
                for parameter in action.parameters:
                    _check_id(connector, "action parameter", parameter.name)
    return specs


# A property's texts and their columns; what is checked of each property of every poll.
_NAME, _UNIT, _TYPE = (Property.name.max_length, Property.unit.max_length,
                       Property.property_type.max_length)
_PROPERTY_TEXTS = (("name", _NAME), ("unit", _UNIT), ("property_type", _TYPE),
                   ("value", MAX_VALUE))


def _plain(prop) -> bool:
    """Every text of ``prop`` storable as it is (as nearly all are): one test for all."""
    try:
        joined = prop.name + prop.unit + prop.property_type + (prop.value or "")
    except TypeError:  # something other than text
        return False
    return (_UNSTORABLE.search(joined) is None and len(prop.name) <= _NAME
            and len(prop.unit) <= _UNIT and len(prop.property_type) <= _TYPE
            and len(prop.value or "") <= MAX_VALUE)


def _mend_property(prop) -> None:
    for name, limit in _PROPERTY_TEXTS:
        value = getattr(prop, name)
        if value is not None or name != "value":  # None: not reported, the stored value stays
            setattr(prop, name, _text(value, limit))


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
    if type(value) is str and len(value) <= limit and _UNSTORABLE.search(value) is None:
        return value  # nearly every text
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    mended = storable(value, limit)
    if mended != value:
        log.warning("a provider's text was mended to be stored (%d characters): %r",
                    len(value), mended[:80])
    return mended
