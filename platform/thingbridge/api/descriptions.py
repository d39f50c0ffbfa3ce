"""GET /api/v1/connectors/descriptions: the installed connectors (no token needed)."""

from thingbridge.api.common import Blueprint, error_responses
from thingbridge.connectors.registry import connector_classes
from thingbridge.errors import found
from thingbridge.models import ConnectorDescription
from thingbridge.schemas.descriptions import DescriptionSchema

blp = Blueprint("descriptions", __name__, url_prefix="/api/v1/connectors/descriptions",
                description="Connector descriptions generated from the installed plugins")


def _installed():
    return ConnectorDescription.select().where(
        ConnectorDescription.type_id.in_(list(connector_classes()))).order_by(ConnectorDescription.id)


@blp.route("", methods=["GET"])
@blp.response(200, DescriptionSchema(many=True))
def list_descriptions():
    """List connector descriptions"""
    return list(_installed())


@blp.route("/<int(max=2147483647):description_id>", methods=["GET"], endpoint="description")
@blp.doc(responses=error_responses(404))
@blp.response(200, DescriptionSchema)
def get_description(description_id):
    """Get one connector description"""
    return found(_installed().where(ConnectorDescription.id == description_id).first(),
                 "connector description")
