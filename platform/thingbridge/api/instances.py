"""/api/v1/connectors/instances: an app's provider configuration, one per connector type."""

from flask import g
from flask.views import MethodView
from peewee import IntegrityError

from thingbridge.api.common import ID, Blueprint, link, links, protected
from thingbridge.api.outside_calls import outside_call
from thingbridge.connectors import lifecycle
from thingbridge.connectors.contract import ConfigError, TransientError
from thingbridge.connectors.plugin_call import guarded
from thingbridge.connectors.registry import build_connector, installed, resolve_type
from thingbridge.connectors.service import (
    app_instances,
    own_instance,
    read_instance,
    validate_config,
)
from thingbridge.db import db
from thingbridge.errors import ApiError
from thingbridge.limits import quotas
from thingbridge.models import ConnectorClient, ConnectorInstance
from thingbridge.schemas.instances import (
    InstanceCreatedSchema,
    InstanceCreateSchema,
    InstanceSchema,
    InstanceUpdateSchema,
)
from thingbridge.schemas.links import InstanceLink

SCOPE = "connctd.connector"
INSTANCE, CREATED = "/api/v1/connectors/instances/{instance_id}", "$response.body#/id"
STILL_USED = "the instance still has connector clients; delete them first"
blp = Blueprint("instances", __name__, url_prefix="/api/v1/connectors/instances",
                description="Connector instances: provider credentials of an app (never returned)")


@blp.route("")
class Instances(MethodView):
    @protected(blp, SCOPE, errors=(400, 409, 429, 502, 503))
    @blp.arguments(InstanceCreateSchema)
    @blp.response(201, InstanceCreatedSchema)
    @blp.doc(**links(201, GetInstance=link(INSTANCE, "get", instance_id=CREATED),
                     UpdateInstance=link(INSTANCE, "patch", instance_id=CREATED),
                     DeleteInstance=link(INSTANCE, "delete", instance_id=CREATED)))
    def post(self, body):
        """Create the app's instance of a connector (validated with one real provider call)"""
        type_id = resolve_type(body["connector_type_id"])
        config, warnings = validate_config(installed(type_id), "instance", body["configuration"])
        if ConnectorInstance.select().where((ConnectorInstance.app == g.app)
                                            & (ConnectorInstance.type_id == type_id)).exists():
            raise ApiError(409, f"this app already has an instance of {type_id}")
        _check(type_id, config)
        try:
            with db.atomic():
                instance = ConnectorInstance.create(app=g.app, type_id=type_id,
                                                    configuration=config)
        except IntegrityError as exc:  # a concurrent request won the unique (app, type)
            raise ApiError(409, f"this app already has an instance of {type_id}") from exc
        instance.warnings = warnings
        return instance

    @protected(blp, SCOPE, errors=())
    @blp.response(200, InstanceLink(many=True))
    def get(self):
        """List the app's instances as links"""
        return app_instances(g.app)


def _check(type_id: str, config: dict) -> None:
    """One real provider call with the configuration (400 if the provider refuses it, 502 if
    it cannot be reached, 503 if the server's outside calls are all under way)."""
    # Each check is a provider call with credentials the app chose, from the API's worker.
    try:
        with outside_call():
            quotas.Rate("INSTANCE_CHECKS_PER_MINUTE", f"check:{g.app.id}",
                        "instance checks").check()
            connector = build_connector(type_id)
            guarded(connector, connector.check, config)
    except ConfigError as exc:
        raise ApiError(400, exc.reason, "INVALID_CONFIGURATION") from exc
    except TransientError as exc:
        raise ApiError(502, f"{type_id} could not be reached to check the configuration: "
                       f"{exc.reason}", "PROVIDER_UNAVAILABLE") from exc


@blp.route(f"/<{ID}:instance_id>", endpoint="instance")
class InstanceById(MethodView):
    @protected(blp, SCOPE, errors=(404,))
    @blp.response(200, InstanceSchema)
    def get(self, instance_id):
        """Get one instance: its clients and connector (never its configuration)"""
        return read_instance(g.app, instance_id)

    @protected(blp, SCOPE, errors=(400, 404, 409, 429, 502, 503))
    @blp.arguments(InstanceUpdateSchema)
    @blp.response(200, InstanceSchema)
    def patch(self, body, instance_id):
        """Replace the instance's configuration (a rotated OAuth client secret, a new app key),
        checked with the provider as on creation; its clients stopped because the provider
        refused the old one start again, the same clients with the grants they had"""
        instance = own_instance(g.app, instance_id)
        config, warnings = validate_config(installed(instance.type_id), "instance",
                                           body["configuration"])
        _check(instance.type_id, config)
        lifecycle.reconfigure_instance(instance, config)
        shown = read_instance(g.app, instance_id)
        shown.warnings = warnings
        return shown

    @protected(blp, SCOPE, errors=(404, 409))
    @blp.response(204)
    def delete(self, instance_id):
        """Delete an instance that has no clients left"""
        instance = own_instance(g.app, instance_id)
        if ConnectorClient.select().where(ConnectorClient.instance == instance).exists():
            raise ApiError(409, STILL_USED)
        try:
            with db.atomic():
                instance.delete_instance()
        except IntegrityError as exc:  # a client created since the check holds it (RESTRICT)
            raise ApiError(409, STILL_USED) from exc
