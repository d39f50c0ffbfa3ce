"""/api/v1/connectors/clients: one connector client per end user (X-External-Subject-Id)."""

from flask import g
from flask_smorest import Blueprint
from peewee import IntegrityError

from thingbridge.api.common import href, protected
from thingbridge.api.instances import description_href, instance_href, validate_config
from thingbridge.auth.guard import subject_id
from thingbridge.connectors import lifecycle, oauth
from thingbridge.connectors.lifecycle import delete_client
from thingbridge.connectors.registry import build_connector, connector_classes, resolve_type
from thingbridge.db import db
from thingbridge.errors import ApiError, not_found
from thingbridge.models import ConnectorClient, ConnectorInstance, ThingMapping
from thingbridge.schemas.clients import ClientCreatedSchema, ClientCreateSchema, ClientSchema
from thingbridge.schemas.common import HrefSchema

SCOPE = "connctd.connector"
blp = Blueprint("clients", __name__, url_prefix="/api/v1/connectors/clients",
                description="Connector clients: one end user's connection to a provider")


def client_href(client_id: str) -> str:
    return href(f"/api/v1/connectors/clients/{client_id}")


def own_client(client_id: str) -> ConnectorClient:
    client = ConnectorClient.get_or_none(
        (ConnectorClient.id == client_id) & (ConnectorClient.app == g.app)
        & (ConnectorClient.external_subject_id == subject_id()))
    if client is None:
        raise not_found("connector client")
    return client


@blp.route("", methods=["POST"])
@protected(blp, SCOPE, subject=True, errors=(400, 409))
@blp.arguments(ClientCreateSchema)
@blp.response(201, ClientCreatedSchema)
@blp.alt_response(303, schema=ClientCreatedSchema,
                  description="OAuth connector: follow Location to the provider's consent page")
def create_client(body):
    """Create the end user's client; OAuth connectors answer 303 to the provider consent page"""
    subject = subject_id()
    type_id = resolve_type(body["connector_type_id"])
    instance = ConnectorInstance.get_or_none((ConnectorInstance.app == g.app)
                                             & (ConnectorInstance.type_id == type_id))
    if instance is None:
        raise ApiError(400, f"this app has no instance of {type_id}; create one first",
                       "NO_INSTANCE")
    config = validate_config(connector_classes()[type_id].client_schema,
                             body["configuration"], "client")
    connector = build_connector(type_id)
    try:
        with db.atomic():
            client = ConnectorClient.create(app=g.app, instance=instance, type_id=type_id,
                                            external_subject_id=subject, configuration=config)
            if connector.auth_kind == "oauth2":
                location = oauth.start_consent(
                    client, connector, instance.configuration,
                    href(oauth.CALLBACK_PATH))
            lifecycle.created(client, poll_now=connector.auth_kind != "oauth2")
    except IntegrityError as exc:
        raise ApiError(409, f"subject {subject!r} already has a {type_id} client") from exc
    if connector.auth_kind == "oauth2":
        return {"client_id": client.id, "href": location}, 303, {"Location": location}
    lifecycle.poll_soon(client)
    return {"client_id": client.id}


@blp.route("", methods=["GET"])
@protected(blp, SCOPE, subject=True, errors=(400,))
@blp.response(200, HrefSchema(many=True))
def list_clients():
    """List the subject's clients as links"""
    rows = ConnectorClient.select(ConnectorClient.id).where(
        (ConnectorClient.app == g.app) & (ConnectorClient.external_subject_id == subject_id())
    ).order_by(ConnectorClient.created_at)
    return [{"href": client_href(r.id)} for r in rows]


@blp.route("/<client_id>", methods=["GET"])
@protected(blp, SCOPE, subject=True, errors=(400, 404))
@blp.response(200, ClientSchema)
def get_client(client_id):
    """Get one client: status and the things it maintains"""
    client = own_client(client_id)
    mappings = ThingMapping.select().where(ThingMapping.client == client).order_by(
        ThingMapping.connector_thing_id)
    return {"id": client.id, "instance": {"href": instance_href(client.instance_id)},
            "connector": {"href": description_href(client.type_id)},
            "mappings": [{"connector_thing_id": m.connector_thing_id, "thing_id": m.thing_id}
                         for m in mappings],
            "status": client.status, "status_reason": client.status_reason}


@blp.route("/<client_id>", methods=["DELETE"])
@protected(blp, SCOPE, subject=True, errors=(400, 404))
@blp.response(204)
def remove_client(client_id):
    """Delete a client and every thing it created"""
    delete_client(own_client(client_id))
