"""/api/v1/connectors/instances: an app's provider configuration, one per connector type."""

from flask import g
from flask_smorest import Blueprint
from marshmallow import ValidationError
from peewee import IntegrityError

from thingbridge.api.common import href, protected
from thingbridge.connectors.contract import ConfigError, TransientError
from thingbridge.connectors.registry import build_connector, connector_classes, resolve_type
from thingbridge.db import db
from thingbridge.errors import ApiError, not_found
from thingbridge.models import ConnectorClient, ConnectorDescription, ConnectorInstance
from thingbridge.schemas.common import HrefSchema
from thingbridge.schemas.instances import (
    InstanceCreatedSchema,
    InstanceCreateSchema,
    InstanceSchema,
)

SCOPE = "connctd.connector"
blp = Blueprint("instances", __name__, url_prefix="/api/v1/connectors/instances",
                description="Connector instances: provider credentials of an app (never returned)")


def validate_config(schema_cls, configuration: dict, what: str) -> dict:
    try:
        return schema_cls().load(configuration)
    except ValidationError as exc:
        raise ApiError(400, f"invalid {what} configuration: " + "; ".join(
            f"{k}: {' '.join(v) if isinstance(v, list) else v}"
            for k, v in exc.normalized_messages().items()),
            "INVALID_CONFIGURATION", errors={"configuration": exc.normalized_messages()}) from exc


def instance_href(instance_id: str) -> str:
    return href(f"/api/v1/connectors/instances/{instance_id}")


def description_href(type_id: str) -> str:
    description = ConnectorDescription.get(ConnectorDescription.type_id == type_id)
    return href(f"/api/v1/connectors/descriptions/{description.id}")


def own_instance(instance_id: str) -> ConnectorInstance:
    instance = ConnectorInstance.get_or_none(
        (ConnectorInstance.id == instance_id) & (ConnectorInstance.app == g.app))
    if instance is None:
        raise not_found("connector instance")
    return instance


@blp.route("", methods=["POST"])
@protected(blp, SCOPE, errors=(400, 409, 502))
@blp.arguments(InstanceCreateSchema)
@blp.response(201, InstanceCreatedSchema)
def create_instance(body):
    """Create the app's instance of a connector (validated with one real provider call)"""
    type_id = resolve_type(body["connector_type_id"])
    config = validate_config(connector_classes()[type_id].instance_schema,
                             body["configuration"], "instance")
    if ConnectorInstance.select().where((ConnectorInstance.app == g.app)
                                        & (ConnectorInstance.type_id == type_id)).exists():
        raise ApiError(409, f"this app already has an instance of {type_id}")
    try:
        build_connector(type_id).check(config)
    except ConfigError as exc:
        raise ApiError(400, exc.reason, "INVALID_CONFIGURATION") from exc
    except TransientError as exc:
        raise ApiError(502, f"{type_id} could not be reached to check the configuration: "
                       f"{exc.reason}", "PROVIDER_UNAVAILABLE") from exc
    try:
        with db.atomic():
            instance = ConnectorInstance.create(app=g.app, type_id=type_id, configuration=config)
    except IntegrityError as exc:  # a concurrent request won the unique (app, type)
        raise ApiError(409, f"this app already has an instance of {type_id}") from exc
    return {"id": instance.id}


@blp.route("", methods=["GET"])
@protected(blp, SCOPE, errors=())
@blp.response(200, HrefSchema(many=True))
def list_instances():
    """List the app's instances as links"""
    rows = ConnectorInstance.select(ConnectorInstance.id).where(
        ConnectorInstance.app == g.app).order_by(ConnectorInstance.created_at)
    return [{"href": instance_href(r.id)} for r in rows]


@blp.route("/<instance_id>", methods=["GET"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(200, InstanceSchema)
def get_instance(instance_id):
    """Get one instance: its clients and connector (never its configuration)"""
    instance = own_instance(instance_id)
    clients = ConnectorClient.select(ConnectorClient.id).where(
        ConnectorClient.instance == instance).order_by(ConnectorClient.created_at)
    return {"id": instance.id,
            "clients": [{"href": href(f"/api/v1/connectors/clients/{c.id}")} for c in clients],
            "connector": {"href": description_href(instance.type_id)}}


@blp.route("/<instance_id>", methods=["DELETE"])
@protected(blp, SCOPE, errors=(404, 409))
@blp.response(204)
def delete_instance(instance_id):
    """Delete an instance that has no clients left"""
    instance = own_instance(instance_id)
    with db.atomic():
        if ConnectorClient.select().where(ConnectorClient.instance == instance).exists():
            raise ApiError(409, "the instance still has connector clients; delete them first")
        instance.delete_instance()
