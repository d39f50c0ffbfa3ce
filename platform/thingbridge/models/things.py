"""The connctd thing model: things own components, which own properties and actions.

``index=False`` on a foreign key: an index in ``Meta.indexes`` starts with that column and
serves its lookups; a second one would only cost a write per row."""

from __future__ import annotations

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from thingbridge.db import utcnow
from thingbridge.models.apps import App
from thingbridge.models.base import BaseModel, JSONField, UUIDKey
from thingbridge.models.connectors import ConnectorClient

PROPERTY_TYPES = ("NUMBER", "STRING", "BOOLEAN")
THING_STATUSES = ("AVAILABLE", "UNAVAILABLE", "UNKNOWN")


class Thing(BaseModel):
    id = UUIDKey()
    app = ForeignKeyField(App, backref="things", on_delete="CASCADE", index=False)
    external_subject_id = CharField(max_length=255)
    # The app whose callback URL receives actions; connector things route to the connector service.
    created_by = ForeignKeyField(App, on_delete="CASCADE", column_name="created_by")
    connector_client = ForeignKeyField(ConnectorClient, null=True, backref="things",
                                       on_delete="SET NULL")
    name = CharField(max_length=255, default="")
    manufacturer = CharField(max_length=255, default="")
    display_type = CharField(max_length=255, default="")
    main_component_id = CharField(max_length=200)
    status = CharField(max_length=16, default="AVAILABLE")
    attributes = JSONField(default=dict)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("app", "external_subject_id"), False),)


class Component(BaseModel):
    thing = ForeignKeyField(Thing, backref="components", on_delete="CASCADE", index=False)
    component_id = CharField(max_length=200)
    name = CharField(max_length=255, default="")
    component_type = CharField(max_length=255, default="")
    capabilities = JSONField(default=list)
    position = IntegerField(default=0)

    class Meta:
        indexes = ((("thing", "component_id"), True),)


class Property(BaseModel):
    component = ForeignKeyField(Component, backref="properties", on_delete="CASCADE",
                                index=False)
    property_id = CharField(max_length=200)
    name = CharField(max_length=255, default="")
    value = TextField(default="")
    unit = CharField(max_length=64, default="")
    type = CharField(max_length=16, default="STRING")
    property_type = CharField(max_length=255, default="")
    last_update = DateTimeField(default=utcnow)
    position = IntegerField(default=0)

    class Meta:
        indexes = ((("component", "property_id"), True),)


class Action(BaseModel):
    component = ForeignKeyField(Component, backref="actions", on_delete="CASCADE",
                                index=False)
    action_id = CharField(max_length=200)
    parameters = JSONField(default=list)  # [{"name", "type", "required"}]
    position = IntegerField(default=0)

    class Meta:
        indexes = ((("component", "action_id"), True),)


class ThingMapping(BaseModel):
    """One row per provider device per client: a retried poll finds its thing, never a copy."""

    client = ForeignKeyField(ConnectorClient, backref="mappings", on_delete="CASCADE",
                             index=False)
    connector_thing_id = CharField(max_length=255)
    thing = ForeignKeyField(Thing, backref="mapping", on_delete="CASCADE", unique=True)

    class Meta:
        indexes = ((("client", "connector_thing_id"), True),)
