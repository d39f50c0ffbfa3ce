"""/api/v1/connectors/clients: one connector client per end user (X-External-Subject-Id)."""

from flask import g
from flask.views import MethodView
from peewee import IntegrityError

from thingbridge.api.common import ID, Blueprint, link, links, protected
from thingbridge.auth.guard import subject_id
from thingbridge.connectors import lifecycle, oauth
from thingbridge.connectors.lifecycle import delete_client, schedule_first_poll
from thingbridge.connectors.registry import build_connector, connector_classes, resolve_type
from thingbridge.connectors.service import (
    own_client,
    read_client,
    subject_clients,
    validate_config,
)
from thingbridge.db import db
from thingbridge.errors import ApiError
from thingbridge.models import ConnectorClient, ConnectorInstance
from thingbridge.schemas.clients import ClientCreatedSchema, ClientCreateSchema, ClientSchema
from thingbridge.schemas.links import ClientLink, external_url

SCOPE = "connctd.connector"
CLIENT, CREATED = "/api/v1/connectors/clients/{client_id}", "$response.body#/client_id"
blp = Blueprint("clients", __name__, url_prefix="/api/v1/connectors/clients",
                description="Connector clients: one end user's connection to a provider")


@blp.route("")
class Clients(MethodView):
    @protected(blp, SCOPE, subject=True, errors=(400, 409))
    @blp.arguments(ClientCreateSchema)
    @blp.response(201, ClientCreatedSchema)
    @blp.doc(**links(201, GetClient=link(CLIENT, "get", True, client_id=CREATED),
                     DeleteClient=link(CLIENT, "delete", True, client_id=CREATED)))
    @blp.alt_response(303, schema=ClientCreatedSchema,
                      description="OAuth connector: follow Location to the provider's consent "
                                  "page")
    def post(self, body):
        """Create the end user's client; OAuth connectors answer 303 to the consent page"""
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
                                                external_subject_id=subject,
                                                configuration=config)
                if connector.auth_kind == "oauth2":
                    location = oauth.start_consent(
                        client, connector, instance.configuration,
                        external_url("oauth_callback.oauth_callback"))
                lifecycle.created(client)
        except IntegrityError as exc:
            raise ApiError(409, f"subject {subject!r} already has a {type_id} client") from exc
        if connector.auth_kind == "oauth2":
            return {"client_id": client.id, "href": location}, 303, {"Location": location}
        schedule_first_poll(client)
        return {"client_id": client.id}

    @protected(blp, SCOPE, subject=True, errors=(400,))
    @blp.response(200, ClientLink(many=True))
    def get(self):
        """List the subject's clients as links"""
        return subject_clients(g.app, subject_id())


@blp.route(f"/<{ID}:client_id>", endpoint="client")
class ClientById(MethodView):
    @protected(blp, SCOPE, subject=True, errors=(400, 404))
    @blp.response(200, ClientSchema)
    def get(self, client_id):
        """Get one client: status and the things it maintains"""
        return read_client(g.app, subject_id(), client_id)

    @protected(blp, SCOPE, subject=True, errors=(400, 404))
    @blp.response(204)
    def delete(self, client_id):
        """Delete a client and every thing it created"""
        delete_client(own_client(g.app, subject_id(), client_id))
