"""/api/v1/connectors/clients: one connector client per end user (X-External-Subject-Id)."""

from flask import g
from flask.views import MethodView
from peewee import IntegrityError

from thingbridge.api.common import ID, Blueprint, link, links, protected
from thingbridge.api.pages import PageQuery, page_of, page_schema, wants_page
from thingbridge.auth.guard import subject_id
from thingbridge.connectors import consent, lifecycle
from thingbridge.connectors.registry import installed, resolve_type
from thingbridge.connectors.service import (
    own_client,
    read_client,
    subject_clients,
    validate_config,
)
from thingbridge.db import db
from thingbridge.errors import ApiError
from thingbridge.models import ConnectorClient, ConnectorInstance
from thingbridge.schemas.clients import (
    ClientConfirmSchema,
    ClientCreatedSchema,
    ClientCreateSchema,
    ClientSchema,
    ClientUpdateSchema,
)
from thingbridge.schemas.links import ClientLink

SCOPE = "connctd.connector"
CLIENT, CREATED = "/api/v1/connectors/clients/{client_id}", "$response.body#/client_id"
ClientPage = page_schema("clients", ClientLink)
blp = Blueprint("clients", __name__, url_prefix="/api/v1/connectors/clients",
                description="Connector clients: one end user's connection to a provider")


def _no_instance(type_id: str) -> ApiError:
    return ApiError(400, f"this app has no instance of {type_id}; create one first",
                    "NO_INSTANCE")


def _to_consent(client: ConnectorClient, location: str, warnings=()):
    """303 to the provider's consent page, the URL also in the body for API clients."""
    return ({"client_id": client.id, "href": location, "warnings": warnings}, 303,
            {"Location": location})


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
            raise _no_instance(type_id)
        checked = validate_config(installed(type_id), "client", body["configuration"])
        oauth = consent.uses_consent(type_id)
        try:
            with db.atomic():
                client = ConnectorClient.create(
                    app=g.app, instance=instance, type_id=type_id, external_subject_id=subject,
                    configuration=checked.configuration, status_reason=(
                        lifecycle.AWAITING_CONSENT if oauth else lifecycle.AWAITING_FIRST_POLL))
                location = consent.begin(client) if oauth else None
                lifecycle.created(client, poll_now=not oauth)
        except IntegrityError as exc:
            if not ConnectorInstance.select().where(ConnectorInstance.id == instance.id).exists():
                raise _no_instance(type_id) from exc  # deleted while the client was created
            raise ApiError(409, f"subject {subject!r} already has a {type_id} client") from exc
        if location:
            return _to_consent(client, location, checked.warnings)
        lifecycle.poll_soon(client)
        return {"client_id": client.id, "warnings": checked.warnings}

    @protected(blp, SCOPE, subject=True, errors=(400,))
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, description="[{href}] links; a page of them with ?limit= or ?after=")
    @blp.doc(responses={200: {"content": {"application/json": {"schema": {"anyOf": [
        {"type": "array", "items": ClientLink}, ClientPage]}}}}})
    def get(self, args):
        """List the subject's clients as links (oldest first; every one, or a page with
        ?limit= and ?after=)"""
        query = subject_clients(g.app, subject_id())
        if wants_page(args):
            return ClientPage().dump(page_of(query, ConnectorClient, args))
        return ClientLink(many=True).dump(query)


@blp.route(f"/<{ID}:client_id>", endpoint="client")
class ClientById(MethodView):
    @protected(blp, SCOPE, subject=True, errors=(400, 404))
    @blp.response(200, ClientSchema)
    def get(self, client_id):
        """Get one client: status (why, since when, polled when) and the things it maintains"""
        return read_client(g.app, subject_id(), client_id)

    @protected(blp, SCOPE, subject=True, errors=(400, 404, 409))
    @blp.arguments(ClientUpdateSchema)
    @blp.response(200, ClientSchema)
    def patch(self, body, client_id):
        """Replace the client's configuration (validated as on creation) and start it again;
        the same client, so its id, mappings and things stay"""
        subject = subject_id()
        client = own_client(g.app, subject, client_id)
        checked = validate_config(installed(client.type_id), "client", body["configuration"])
        lifecycle.restart(client, lifecycle.RECONFIGURED, configuration=checked.configuration)
        shown = read_client(g.app, subject, client_id)
        shown.warnings = checked.warnings
        return shown

    @protected(blp, SCOPE, subject=True, errors=(400, 404))
    @blp.response(204)
    def delete(self, client_id):
        """Delete a client and every thing it created"""
        lifecycle.delete_client(own_client(g.app, subject_id(), client_id))


@blp.route(f"/<{ID}:client_id>/reauthorize", endpoint="reauthorize")
class Reauthorize(MethodView):
    @protected(blp, SCOPE, subject=True, errors=(400, 404, 409))
    @blp.response(303, ClientCreatedSchema,
                  description="Follow Location to the provider's consent page")
    def post(self, client_id):
        """Ask the end user's consent again for an existing OAuth client, in any status
        (a revoked grant, a changed password, a consent never finished); after consent the
        same client, with the same things, goes STARTING, then STARTED. Until then its current
        grant, if it still works, stays in use. 409 for a connector without consent"""
        client, location = consent.reauthorize(g.app, subject_id(), client_id)
        return _to_consent(client, location)


@blp.route(f"/<{ID}:client_id>/confirm", endpoint="confirm")
class Confirm(MethodView):
    @protected(blp, SCOPE, subject=True, errors=(400, 404))
    @blp.arguments(ClientConfirmSchema)
    @blp.response(200, ClientSchema)
    def post(self, body, client_id):
        """Instances with `confirm_consent`: activate a consent with the one-time code the end
        user's browser brought back, under the same subject that created the client; the
        client goes STARTING, then STARTED"""
        subject = subject_id()
        consent.confirm(g.app, subject, client_id, body["confirmation"])
        return read_client(g.app, subject, client_id)
