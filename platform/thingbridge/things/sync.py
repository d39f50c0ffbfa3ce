"""A poll's things: compare the provider's report with what is stored (``plan``), then write
only the difference and say what changed (``apply``).

``plan`` reads nothing and writes nothing; ``apply`` writes inside the caller's transaction and
returns the events for the caller to emit, so the poll decides in one place what commits
together and in which order rows are locked. Idempotent by construction: ThingMapping is unique
per (client, connector_thing_id), so a retried poll finds the thing it created before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec
from thingbridge.db import utcnow
from thingbridge.models import Action, Component, ConnectorClient, Property, Thing, ThingMapping
from thingbridge.outbox.events import Pending
from thingbridge.schemas.common import ISO
from thingbridge.things import poll_sql
from thingbridge.things.service import thing_data


class ValueChange(NamedTuple):
    """One reading that differs from the stored value."""

    thing_id: str
    component_id: str
    property_id: str
    pk: int
    old: str
    new: str


@dataclass
class Reshape:
    """What one existing thing needs besides new values (which never make it "updated")."""

    thing_id: str
    spec: ThingSpec
    fields_changed: bool = False
    stale_components: list[int] = field(default_factory=list)
    new_components: list[tuple[int, ComponentSpec]] = field(default_factory=list)
    new_properties: list[tuple[int, PropertySpec]] = field(default_factory=list)
    gone_properties: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields_changed or self.stale_components or self.new_components
                    or self.new_properties or self.gone_properties)


@dataclass
class Plan:
    created: list[ThingSpec] = field(default_factory=list)
    reshaped: list[Reshape] = field(default_factory=list)
    values: list[ValueChange] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # thing ids

    @property
    def structural(self) -> bool:
        """Anything beyond new values: a thing, component or property added, removed, renamed."""
        return bool(self.created or self.reshaped or self.deleted)

    @property
    def empty(self) -> bool:
        return not (self.structural or self.values)


def thing_fields(spec: ThingSpec) -> dict:
    return dict(name=spec.name, manufacturer=spec.manufacturer, display_type=spec.display_type,
                main_component_id=spec.main_component_id, status=spec.status,
                attributes=spec.attributes)


class StoredThings:
    """The things a client already has, from one query (``poll_sql.read_things``). Rows stay
    plain tuples: a model instance per property was most of a steady poll's CPU."""

    def __init__(self, rows: list[poll_sql.StoredProperty]):
        self.mapped: dict[str, str] = {}               # connector thing id -> thing id
        self.fields: dict[str, dict] = {}              # thing id -> thing_fields() shape
        self.components: dict[str, dict[str, int]] = {}  # thing id -> component id -> pk
        self.properties: dict[tuple[int, str], tuple[int, str]] = {}  # -> (pk, value)
        for row in rows:
            if row.thing_id not in self.fields:
                self.mapped[row.connector_thing_id] = row.thing_id
                self.fields[row.thing_id] = dict(
                    name=row.name, manufacturer=row.manufacturer,
                    display_type=row.display_type, main_component_id=row.main_component_id,
                    status=row.status, attributes=json.loads(row.attributes))
                self.components[row.thing_id] = {}
            if row.component_pk is not None:
                self.components[row.thing_id][row.component_id] = row.component_pk
            if row.property_pk is not None:
                self.properties[(row.component_pk, row.property_id)] = (row.property_pk,
                                                                        row.value)


def read_stored(client_id: str) -> StoredThings:
    return StoredThings(poll_sql.read_things(client_id))


def plan(stored: StoredThings, specs: list[ThingSpec]) -> Plan:
    """What it takes to bring the stored things in line with ``specs``."""
    result = Plan()
    for spec in specs:
        thing_id = stored.mapped.get(spec.connector_thing_id)
        if thing_id is None:
            result.created.append(spec)
            continue
        reshape = _compare(stored, thing_id, spec, result.values)
        if reshape:
            result.reshaped.append(reshape)
    wanted = {s.connector_thing_id for s in specs}
    result.deleted = [tid for cid, tid in stored.mapped.items() if cid not in wanted]
    return result


def _compare(stored: StoredThings, thing_id: str, spec: ThingSpec,
             values: list[ValueChange]) -> Reshape:
    """One existing thing against its spec; changed readings are appended to ``values``."""
    reshape = Reshape(thing_id, spec)
    reshape.fields_changed = stored.fields[thing_id] != thing_fields(spec)
    components = stored.components[thing_id]
    wanted = {c.id for c in spec.components}
    reshape.stale_components = [pk for cid, pk in components.items() if cid not in wanted]
    seen = set()
    for position, cspec in enumerate(spec.components):
        component_pk = components.get(cspec.id)
        if component_pk is None:
            reshape.new_components.append((position, cspec))
            continue
        for pspec in cspec.properties:
            seen.add((component_pk, pspec.id))
            known = stored.properties.get((component_pk, pspec.id))
            if pspec.value is None:
                continue  # not reported this time: what is stored stays
            if known is None:
                reshape.new_properties.append((component_pk, pspec))
            elif known[1] != pspec.value:
                # Only a changed value moves lastUpdate: an unchanged reading is not news.
                values.append(ValueChange(thing_id, cspec.id, pspec.id, known[0], known[1],
                                          pspec.value))
    # Properties no longer reported (their component may remain); a stale component's
    # properties go with it.
    kept = set(components.values()) - set(reshape.stale_components)
    reshape.gone_properties = [pk for key, (pk, _) in stored.properties.items()
                               if key[0] in kept and key not in seen]
    return reshape


def apply(client: ConnectorClient, plan: Plan) -> list[Pending]:
    """Write ``plan`` in the caller's transaction; returns the events that say what changed."""
    subject = client.external_subject_id
    said = []
    for spec in plan.created:
        thing_id = _create(client, spec)
        said.append(Pending("thing.created", subject, thing_data(
            thing_id, connectorClientId=client.id, **thing_fields(spec))))
    for reshape in plan.reshaped:
        _reshape(reshape)
        said.append(Pending("thing.updated", subject,
                            thing_data(reshape.thing_id, **thing_fields(reshape.spec))))
    said += [Pending("thing.property_changed", subject, data)
             for data in _write_values(plan.values)]
    if plan.deleted:
        Thing.delete().where(Thing.id.in_(plan.deleted)).execute()
        said += [Pending("thing.deleted", subject, {"thingId": tid}) for tid in plan.deleted]
    return said


def _create(client: ConnectorClient, spec: ThingSpec) -> str:
    thing = Thing.create(app=client.app_id, external_subject_id=client.external_subject_id,
                         created_by=client.app_id, connector_client=client.id,
                         **thing_fields(spec))
    ThingMapping.create(client=client.id, connector_thing_id=spec.connector_thing_id,
                        thing=thing)
    for position, component in enumerate(spec.components):
        create_component(thing, component, position)
    return thing.id


def create_component(thing, spec: ComponentSpec, position: int) -> None:
    component = Component.create(thing=thing, component_id=spec.id, name=spec.name,
                                 component_type=spec.component_type,
                                 capabilities=spec.capabilities, position=position)
    now = utcnow()
    reported = [p for p in spec.properties if p.value is not None]
    if reported:
        Property.insert_many([
            dict(component=component, property_id=p.id, name=p.name, value=p.value,
                 unit=p.unit, type=p.type, property_type=p.property_type, last_update=now,
                 position=i, created_at=now)
            for i, p in enumerate(reported)]).execute()
    if spec.actions:
        Action.insert_many([
            dict(component=component, action_id=a.id, position=i, created_at=now,
                 parameters=[{"name": p.name, "type": p.type, "required": p.required}
                             for p in a.parameters])
            for i, a in enumerate(spec.actions)]).execute()


def _reshape(reshape: Reshape) -> None:
    if reshape.fields_changed:
        Thing.update(updated_at=utcnow(), **thing_fields(reshape.spec)).where(
            Thing.id == reshape.thing_id).execute()
    if reshape.stale_components:
        Component.delete().where(Component.id.in_(reshape.stale_components)).execute()
    for position, cspec in reshape.new_components:
        create_component(reshape.thing_id, cspec, position)
    now = utcnow()
    for component_pk, pspec in reshape.new_properties:
        Property.create(component=component_pk, property_id=pspec.id, name=pspec.name,
                        value=pspec.value, unit=pspec.unit, type=pspec.type,
                        property_type=pspec.property_type, last_update=now)
    if reshape.gone_properties:
        Property.delete().where(Property.id.in_(reshape.gone_properties)).execute()


def _write_values(changes: list[ValueChange]) -> list[dict]:
    """Every changed reading in one statement (a station poll changes dozens), each where the
    stored value, read under lock, still differs from it; returns the property_changed data."""
    if not changes:
        return []
    now = utcnow()
    replaced = poll_sql.write_values([(c.pk, c.new) for c in changes], now)
    stamp = now.strftime(ISO)
    return [_changed(c, replaced[c.pk], stamp) for c in changes if c.pk in replaced]


def _changed(change: ValueChange, old: str | None, stamp: str) -> dict:
    return {"thingId": change.thing_id, "componentId": change.component_id,
            "propertyId": change.property_id, "oldValue": old, "newValue": change.new,
            "lastUpdate": stamp}


# Where the value replaced goes in a property_changed event's JSON text; a quote in a value
# is escaped, so this text is only ever the key itself.
_OLD_VALUE = ',"oldValue":null,'


def record_readings(client: ConnectorClient, changes: list[ValueChange],
                    polled: dict) -> bool:
    """PostgreSQL: record a STARTED client's poll (``poll_sql.mark_polled(**polled)``) and
    write its new readings with their events in one statement, committed on its own (a poll
    that brought nothing but new readings). False, with nothing written, if the client is not
    STARTED (any more)."""
    stamp = polled["now"].strftime(ISO)
    rows = []
    for change in changes:
        text = json.dumps(_changed(change, None, stamp), separators=(",", ":"))
        before, after = text.split(_OLD_VALUE, 1)
        rows.append((change.pk, change.new, before + _OLD_VALUE[:-5], "," + after))
    return poll_sql.record_readings(**polled, changes=rows, app_id=client.app_id,
                                    type_="thing.property_changed",
                                    subject=client.external_subject_id)
