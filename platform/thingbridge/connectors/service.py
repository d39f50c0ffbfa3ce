"""An app's connector instances and clients as the API finds them (another app's or subject's
is 404), each with its connector's description, and configuration checked by the plugin."""

from __future__ import annotations

from typing import NamedTuple

from marshmallow import Schema, ValidationError, fields
from peewee import prefetch

from thingbridge.errors import ApiError, found
from thingbridge.models import (
    ConnectorClient,
    ConnectorDescription,
    ConnectorInstance,
    ThingMapping,
)


class Checked(NamedTuple):
    configuration: dict
    warnings: list[str]


class ConsentOptions(Schema):
    """Instance settings the host reads for every OAuth connector, beside the plugin's own."""

    confirm_consent = fields.Boolean(metadata={
        "description": "After consent the browser returns with a one-time `confirmation` code; "
                       "the client gets the grant only when the app's backend posts it to "
                       "POST /connectors/clients/{id}/confirm under the same subject"})


def validate_config(connector_cls, what: str, configuration: dict) -> Checked:
    """``configuration`` loaded by the plugin's ``what`` ("instance" or "client") schema (and
    the host's ``ConsentOptions`` for an OAuth instance), and a warning for each key neither
    knows, left out unless the connector declares such keys an error
    (``strict_configuration``). 400 naming each problem otherwise."""
    plugin = getattr(connector_cls, f"{what}_schema")()
    host = ConsentOptions() if what == "instance" and connector_cls.auth_kind == "oauth2" else None
    host_keys = _keys(host) if host else set()
    unknown = [] if what in connector_cls.strict_configuration else sorted(
        key for key in configuration if key not in _keys(plugin) | host_keys)
    given = {k: v for k, v in configuration.items() if k not in unknown}
    try:
        loaded = plugin.load({k: v for k, v in given.items() if k not in host_keys})
        if host:
            loaded.update(host.load({k: v for k, v in given.items() if k in host_keys}))
    except ValidationError as exc:
        raise ApiError(400, f"invalid {what} configuration: " + "; ".join(
            f"{k}: {' '.join(v) if isinstance(v, list) else v}"
            for k, v in exc.normalized_messages().items()),
            "INVALID_CONFIGURATION", errors={"configuration": exc.normalized_messages()}) from exc
    return Checked(loaded, [f"configuration.{key}: unknown {connector_cls.type_id} {what} "
                            "setting, ignored" for key in unknown])


def _keys(schema: Schema) -> set[str]:
    return {field.data_key or name for name, field in schema.load_fields.items()}


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
    """The client as the API shows it: status (why, since when, polled when), its ``instance``
    and ``description`` (ids) and its thing ``mappings`` (configuration and tokens are never
    read for it)."""
    query = _client(ConnectorClient.select(
        ConnectorClient.id, ConnectorClient.type_id, ConnectorClient.status,
        ConnectorClient.status_reason, ConnectorClient.status_since,
        ConnectorClient.last_polled_at, ConnectorClient.next_poll_at, ConnectorInstance.id,
        ConnectorDescription.id
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
