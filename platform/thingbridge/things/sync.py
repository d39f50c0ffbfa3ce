"""Write connector thing specs into the thing model: upsert by mapping, change only what changed.

Idempotent by construction: ThingMapping is unique per (client, connector_thing_id), so a retried
or concurrent poll of the same client finds the thing another poll created instead of adding one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from peewee import IntegrityError

from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec
from thingbridge.db import db, locking, utcnow
from thingbridge.models import Action, Component, ConnectorClient, Property, Thing, ThingMapping
from thingbridge.outbox import events
from thingbridge.things import poll_sql
from thingbridge.things.service import thing_data


@dataclass
class SyncResult:
    """What one sync changed, and the events that say so (emitted in the same transaction)."""

    subject: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # name, status, components... not values
    deleted: list[str] = field(default_factory=list)
    changed_properties: int = 0
    events: list[events.Pending] = field(default_factory=list)

    def add(self, type_: str, data: dict) -> None:
        self.events.append(events.Pending(type_, self.subject, data))


def _thing_fields(spec: ThingSpec) -> dict:
    return dict(name=spec.name, manufacturer=spec.manufacturer, display_type=spec.display_type,
                main_component_id=spec.main_component_id, status=spec.status,
                attributes=spec.attributes)


def sync_things(client: ConnectorClient, specs: list[ThingSpec],
                finish: Callable[[], object] = lambda: None) -> SyncResult:
    """Bring the client's things in line with ``specs``, then call ``finish`` (the poll
    records its success there): in the same transaction as any write, so a poll that changed
    something commits once. ``finish`` runs before the events are appended: it may lock the
    client row, and everything else that locks both (``clients.set_status``) takes the client
    row before the app's event counter, so the order never inverts into a deadlock.

    The stored state is read once, outside any transaction: a steady poll (nothing changed)
    ends there. If only values changed they are swapped in with a compare-and-set, so a value
    someone else changed since the read is re-read under lock, never overwritten blindly.
    Anything structural (a thing, component or property added or removed, a name changed)
    re-reads inside one transaction and writes it all there."""
    result = SyncResult(client.external_subject_id)
    current = _Current(poll_sql.read_things(client.id))
    plans = current.plan(specs)
    if plans is not None:
        changes = [change for plan in plans for change in plan.values]
        if not changes:
            finish()
            return result
        with db.atomic():
            current.write_values(changes, result)
            finish()
            events.emit_many(client.app_id, result.events)
        return result
    with db.atomic():
        current = _Current(poll_sql.read_things(client.id))
        changes = []
        for spec in specs:
            thing_id = current.mapped.get(spec.connector_thing_id)
            if thing_id is None:
                changes += _create(client, spec, result)
            else:
                plan = current.compare(thing_id, spec)
                _apply(plan, result)
                changes += plan.values
        current.write_values(changes, result)
        wanted = {s.connector_thing_id for s in specs}
        gone = [tid for cid, tid in current.mapped.items() if cid not in wanted]
        if gone:
            Thing.delete().where(Thing.id.in_(gone)).execute()
            result.deleted.extend(gone)
            for thing_id in gone:
                result.add("thing.deleted", {"thingId": thing_id})
        finish()
        events.emit_many(client.app_id, result.events)
    return result


def _create(client: ConnectorClient, spec: ThingSpec, result: SyncResult) -> list[_Value]:
    """Create the thing; returns value changes to write if a concurrent poll created it first."""
    try:
        with db.atomic():  # savepoint: losing the race undoes only this thing
            thing = Thing.create(app=client.app_id, external_subject_id=client.external_subject_id,
                                 created_by=client.app_id, connector_client=client,
                                 **_thing_fields(spec))
            ThingMapping.create(client=client, connector_thing_id=spec.connector_thing_id,
                                thing=thing)
            for position, component in enumerate(spec.components):
                create_component(thing, component, position)
    except IntegrityError:
        # A concurrent poll created it first: treat it as existing and update it instead.
        current = _Current(poll_sql.read_things(client.id))
        thing_id = current.mapped.get(spec.connector_thing_id)
        if thing_id is None:
            raise  # not a lost race (the client itself was deleted, say)
        plan = current.compare(thing_id, spec)
        _apply(plan, result)
        return plan.values
    result.created.append(thing.id)
    result.add("thing.created", thing_data(thing.id, connectorClientId=client.id,
                                           **_thing_fields(spec)))
    return []


def create_component(thing, spec: ComponentSpec, position: int) -> None:
    component = Component.create(thing=thing, component_id=spec.id, name=spec.name,
                                 component_type=spec.component_type,
                                 capabilities=spec.capabilities, position=position)
    now = utcnow()
    Property.insert_many([
        dict(component=component, property_id=p.id, name=p.name, value=p.value, unit=p.unit,
             type=p.type, property_type=p.property_type, last_update=now, position=i,
             created_at=now)
        for i, p in enumerate(spec.properties)]).execute() if spec.properties else None
    Action.insert_many([
        dict(component=component, action_id=a.id, position=i, created_at=now,
             parameters=[{"name": p.name, "type": p.type, "required": p.required}
                         for p in a.parameters])
        for i, a in enumerate(spec.actions)]).execute() if spec.actions else None


class _Value(NamedTuple):
    """One reading that differs from the stored value."""

    thing_id: str
    component_id: str
    property_id: str
    pk: int
    old: str
    new: str


@dataclass
class _Plan:
    """What one existing thing needs; ``values`` alone never makes it ``updated``."""

    thing_id: str
    spec: ThingSpec
    fields_changed: bool = False
    stale_components: list[int] = field(default_factory=list)
    new_components: list[tuple[int, ComponentSpec]] = field(default_factory=list)
    new_properties: list[tuple[int, PropertySpec]] = field(default_factory=list)
    gone_properties: list[int] = field(default_factory=list)
    values: list[_Value] = field(default_factory=list)

    @property
    def structural(self) -> bool:
        return bool(self.fields_changed or self.stale_components or self.new_components
                    or self.new_properties or self.gone_properties)


class _Current:
    """A client's stored things, from one query (``poll_sql.read_things``); rows stay plain
    tuples because building a model instance per property was most of a steady poll's CPU."""

    def __init__(self, rows: list[poll_sql.StoredProperty]):
        self.mapped: dict[str, str] = {}               # connector thing id -> thing id
        self.fields: dict[str, dict] = {}              # thing id -> _thing_fields() shape
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

    def plan(self, specs: list[ThingSpec]) -> list[_Plan] | None:
        """Per-thing plans if only values can have changed; None if anything structural did
        (a thing to create or delete, or a plan that is ``structural``)."""
        if len(specs) != len(self.mapped) or any(
                s.connector_thing_id not in self.mapped for s in specs):
            return None
        plans = [self.compare(self.mapped[s.connector_thing_id], s) for s in specs]
        return None if any(p.structural for p in plans) else plans

    def compare(self, thing_id: str, spec: ThingSpec) -> _Plan:
        plan = _Plan(thing_id, spec)
        plan.fields_changed = self.fields[thing_id] != _thing_fields(spec)
        components = self.components[thing_id]
        wanted = {c.id for c in spec.components}
        plan.stale_components = [pk for cid, pk in components.items() if cid not in wanted]
        seen = set()
        for position, cspec in enumerate(spec.components):
            component_pk = components.get(cspec.id)
            if component_pk is None:
                plan.new_components.append((position, cspec))
                continue
            for pspec in cspec.properties:
                seen.add((component_pk, pspec.id))
                stored = self.properties.get((component_pk, pspec.id))
                if stored is None:
                    plan.new_properties.append((component_pk, pspec))
                elif stored[1] != pspec.value:
                    # Only a changed value moves lastUpdate: an unchanged reading is not news.
                    plan.values.append(_Value(thing_id, cspec.id, pspec.id, stored[0],
                                              stored[1], pspec.value))
        # Properties no longer reported (their component may remain); a stale component's
        # properties go with it.
        kept = set(components.values()) - set(plan.stale_components)
        plan.gone_properties = [pk for key, (pk, _) in self.properties.items()
                                if key[0] in kept and key not in seen]
        return plan

    def write_values(self, changes: list[_Value], result: SyncResult) -> None:
        """Every changed reading of the poll in one statement (a station poll changes dozens),
        each only if the stored value is still the one compared against."""
        if not changes:
            return
        now = utcnow()
        swapped = poll_sql.swap_values([(c.pk, c.old, c.new) for c in changes], now)
        old = {c.pk: c.old for c in changes if c.pk in swapped}
        raced = [c for c in changes if c.pk not in swapped]
        if raced:
            old.update(_rewrite_raced(raced, now))
        last_update = now.strftime(events.ISO)
        for c in changes:
            if c.pk in old:
                result.changed_properties += 1
                result.add("thing.property_changed", {
                    "thingId": c.thing_id, "componentId": c.component_id,
                    "propertyId": c.property_id, "oldValue": old[c.pk], "newValue": c.new,
                    "lastUpdate": last_update})


def _rewrite_raced(raced: list[_Value], now) -> dict[int, str]:
    """Values someone else changed between our read and our write: re-read them under lock and
    write the reading where it still differs; returns pk -> the value it replaced."""
    wanted = {c.pk: c.new for c in raced}
    replaced = {}
    query = Property.select(Property.id, Property.value).where(Property.id.in_(list(wanted)))
    for pk, value in locking(query).tuples():
        if value != wanted[pk]:
            Property.update(value=wanted[pk], last_update=now).where(Property.id == pk).execute()
            replaced[pk] = value
    return replaced


def _apply(plan: _Plan, result: SyncResult) -> None:
    """Write one thing's structural changes (values are written for all things at once)."""
    if not plan.structural:
        return
    fields = _thing_fields(plan.spec)
    if plan.fields_changed:
        Thing.update(updated_at=utcnow(), **fields).where(Thing.id == plan.thing_id).execute()
    if plan.stale_components:
        Component.delete().where(Component.id.in_(plan.stale_components)).execute()
    for position, cspec in plan.new_components:
        create_component(plan.thing_id, cspec, position)
    now = utcnow()
    for component_pk, pspec in plan.new_properties:
        Property.create(component=component_pk, property_id=pspec.id, name=pspec.name,
                        value=pspec.value, unit=pspec.unit, type=pspec.type,
                        property_type=pspec.property_type, last_update=now)
    if plan.gone_properties:
        Property.delete().where(Property.id.in_(plan.gone_properties)).execute()
    result.updated.append(plan.thing_id)
    result.add("thing.updated", thing_data(plan.thing_id, **fields))
