"""GET /api/v1/connectors/descriptions: the installed connectors (no token needed)."""

from thingbridge.api.common import Blueprint, error_responses
from thingbridge.connectors.registry import installed_descriptions
from thingbridge.errors import found
from thingbridge.schemas.descriptions import DescriptionSchema

blp = Blueprint("descriptions", __name__, url_prefix="/api/v1/connectors/descriptions",
                description="Connector descriptions generated from the installed plugins")


@blp.route("", methods=["GET"])
@blp.response(200, DescriptionSchema(many=True))
def list_descriptions():
    """List connector descriptions"""
    return installed_descriptions()


@blp.route("/<int(max=2147483647):description_id>", methods=["GET"], endpoint="description")
@blp.doc(responses=error_responses(404))
@blp.response(200, DescriptionSchema)
def get_description(description_id):
    """Get one connector description"""
    return found(next((d for d in installed_descriptions() if d.id == description_id), None),
                 "connector description")
