"""An app's connector instances and clients as the API finds them (another app's or subject's
is 404), each with its connector's description, and configuration checked by the plugin."""

from __future__ import annotations

from marshmallow import ValidationError
from peewee import prefetch

from thingbridge.errors import ApiError, found
from thingbridge.models import (
    ConnectorClient,
    ConnectorDescription,
    ConnectorInstance,
    ThingMapping,
)


def validate_config(schema_cls, configuration: dict, what: str) -> dict:
    """``configuration`` loaded by a plugin's instance or client schema; 400 naming each
    problem otherwise."""
    try:
        return schema_cls().load(configuration)
    except ValidationError as exc:
        raise ApiError(400, f"invalid {what} configuration: " + "; ".join(
            f"{k}: {' '.join(v) if isinstance(v, list) else v}"
            for k, v in exc.normalized_messages().items()),
            "INVALID_CONFIGURATION", errors={"configuration": exc.normalized_messages()}) from exc


def app_instances(app):
    return ConnectorInstance.select(ConnectorInstance.id).where(
        ConnectorInstance.app == app).order_by(ConnectorInstance.created_at)


def own_instance(app, instance_id: str) -> ConnectorInstance:
    return found(_instance(ConnectorInstance.select(), app, instance_id).first(),
                 "connector instance")


def read_instance(app, instance_id: str) -> ConnectorInstance:
    """The instance as the API shows it: id, its connector's ``description`` and its
    ``clients`` (ids only; configurations are never read for it)."""
    query = _instance(ConnectorInstance.select(
        ConnectorInstance.id, ConnectorInstance.type_id, ConnectorDescription.id).join(
        ConnectorDescription, on=_described_by(ConnectorInstance), attr="description"),
        app, instance_id)
    clients = ConnectorClient.select(ConnectorClient.id, ConnectorClient.instance).order_by(
        ConnectorClient.created_at)
    instances = prefetch(query, clients)
    return found(instances[0] if instances else None, "connector instance")


def subject_clients(app, subject: str):
    return ConnectorClient.select(ConnectorClient.id).where(
        (ConnectorClient.app == app) & (ConnectorClient.external_subject_id == subject)
    ).order_by(ConnectorClient.created_at)


def own_client(app, subject: str, client_id: str) -> ConnectorClient:
    return found(_client(ConnectorClient.select(), app, subject, client_id).first(),
                 "connector client")


def read_client(app, subject: str, client_id: str) -> ConnectorClient:
    """The client as the API shows it: status, its ``instance`` and ``description`` (ids) and
    its thing ``mappings`` (configuration and tokens are never read for it)."""
    query = _client(ConnectorClient.select(
        ConnectorClient.id, ConnectorClient.type_id, ConnectorClient.status,
        ConnectorClient.status_reason, ConnectorInstance.id, ConnectorDescription.id
    ).join(ConnectorInstance).switch(ConnectorClient).join(
        ConnectorDescription, on=_described_by(ConnectorClient), attr="description"),
        app, subject, client_id)
    mappings = ThingMapping.select().order_by(ThingMapping.connector_thing_id)
    clients = prefetch(query, mappings)
    return found(clients[0] if clients else None, "connector client")


def _instance(query, app, instance_id: str):
    return query.where((ConnectorInstance.id == instance_id) & (ConnectorInstance.app == app))


def _client(query, app, subject: str, client_id: str):
    return query.where((ConnectorClient.id == client_id) & (ConnectorClient.app == app)
                       & (ConnectorClient.external_subject_id == subject))


def _described_by(model):
    return model.type_id == ConnectorDescription.type_id
