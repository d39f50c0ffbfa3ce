"""Triggering actions on things, reading and finishing action requests, callback registration."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from thingbridge.actions import idempotency, signing
from thingbridge.actions.delivery import create_request
from thingbridge.actions.service import check_parameters, finish
from thingbridge.api import outside_calls
from thingbridge.api.common import (
    ID,
    KEY,
    Blueprint,
    error_responses,
    headers,
    link,
    links,
    protected,
)
from thingbridge.auth.guard import subject_id
from thingbridge.errors import ApiError, found
from thingbridge.limits import quotas
from thingbridge.models import APP_PLAIN, ActionRequest, App, Thing
from thingbridge.schemas.actions import (
    ActionRequestOut,
    ActionRequestUpdate,
    CallbackRegistered,
    CallbackRegistration,
    ParametersIn,
)
from thingbridge.things.service import own_action_target

blp = Blueprint("actions", __name__, url_prefix="/api/v1",
                description="Actions on things, routed to the creating app's callback URL")
ACTION = "connctd.things.action"
REQUEST, CREATED = "/api/v1/actions/requests/{request_id}", "$response.body#/id"


@blp.route(f"/things/<{ID}:thing_id>/components/<{KEY}:component_id>/actions/"
           f"<{KEY}:action_id>", methods=["POST"])
@headers(idempotency.PARAMETER_DOC)
@protected(blp, ACTION, subject=True, errors=(400, 404, 424, 429))
@blp.arguments(ParametersIn)
@blp.response(201, ActionRequestOut, headers=idempotency.REPLAYED_DOC)
@blp.doc(responses=error_responses(422, text={422: "IDEMPOTENCY_KEY_REUSED: the "
                                              "Idempotency-Key was used for another trigger"}))
@blp.doc(**links(201, GetActionRequest=link(REQUEST, "get", True, request_id=CREATED),
                 FinishActionRequest=link(REQUEST, "put", request_id=CREATED)))
def trigger_action(parameters, thing_id, component_id, action_id):
    """Trigger an action

    A connector thing's action is performed before the answer when the server has a slot for
    it (one at a time under `thingbridge api`'s defaults), and the answer then says
    COMPLETED or FAILED (a provider that refused for now: PENDING, with the error, retried);
    otherwise, and for a thing an app created, the request is PENDING until the provider or
    the app answers. A trigger sent again with the same `Idempotency-Key` answers the request
    the first one recorded.
    """
    subject = subject_id()
    key = idempotency.key_of()
    if key is not None and (earlier := idempotency.earlier(
            g.app, key, subject, thing_id, component_id, action_id, parameters)) is not None:
        return _replayed(earlier)

    rate = quotas.Rate("ACTION_TRIGGERS_PER_MINUTE", f"actions:{g.app.id}", "action triggers")

    try:
        thing, action = own_action_target(g.app, subject, thing_id, component_id, action_id)
        check_parameters(action, parameters)
        if thing.connector_client_id is None and not thing.created_by.callback_url:
            raise ApiError(424, "the app that created this thing has no action callback URL; "
                                "register one with POST /api/v1/actions/callback/register",
                           "NO_CALLBACK_URL")
    except ApiError:
        rate.check()  # a refused trigger counts too, and a spent minute answers 429 first
        raise
    # An accepted trigger is counted with the request it records, committed together.
    action_request, first = create_request(g.app, subject, thing, component_id, action_id,
                                           parameters, rate, outside_calls.slot, key)
    if first:
        return action_request
    # A trigger with this key recorded first, after the look-up above: the same one, or a 422.
    return _replayed(idempotency.replay(action_request, subject, thing_id, component_id,
                                        action_id, parameters))


def _replayed(action_request: ActionRequest):
    """The answer to a repeated ``Idempotency-Key``: the request as it stands now."""
    return action_request, 201, {idempotency.REPLAYED: "true"}


def _request_for_reader(request_id: str) -> ActionRequest:
    return found(ActionRequest.get_or_none(
        (ActionRequest.id == request_id) & (ActionRequest.app == g.app)
        & (ActionRequest.external_subject_id == subject_id())), "action request")


@blp.route(f"/actions/requests/<{ID}:request_id>")
class ActionRequestById(MethodView):
    @protected(blp, ACTION, subject=True, errors=(400, 404))
    @blp.response(200, ActionRequestOut)
    def get(self, request_id):
        """Read an action request (same app and subject only)"""
        return _request_for_reader(request_id)

    @protected(blp, "connctd.connector", errors=(400, 404, 409))
    @blp.arguments(ActionRequestUpdate)
    @blp.response(200, ActionRequestOut)
    def put(self, body, request_id):
        """The thing's creating app finishes a request it answered 202 for"""
        request = found(ActionRequest.select(ActionRequest).join(Thing).where(
            (ActionRequest.id == request_id) & (Thing.created_by == g.app)).first(),
            "action request")
        if not finish(request, body["status"], body["error"]):
            current = ActionRequest.get_by_id(request.id).status
            raise ApiError(409, f"action request is already {current}")
        return ActionRequest.get_by_id(request.id)


@blp.route("/actions/callback/register", methods=["POST"])
@protected(blp, "connctd.connector", errors=(400, 503))
@blp.arguments(CallbackRegistration)
@blp.response(200, CallbackRegistered)
def register_callback(body):
    """Register the app's action callback URL

    https, to a public address or a range the operator opened (THINGBRIDGE_OUTBOUND_ALLOW;
    loopback in the embedded SQLite mode); plain http only to such a range.
    """
    url = body["CallbackUrl"]
    if problem := outside_calls.url_problem(url, g.app.id):
        raise ApiError(400, f"CallbackUrl {problem}", "INVALID_CALLBACK_URL")
    app = App.select(*APP_PLAIN).where(App.id == g.app.id).get()
    answer = {"callbackUrl": url}
    # A rotation never reads the old key: it is how an app replaces one no key decrypts.
    if body["rotateSigningKey"] or app.signing_key is None:
        app.signing_key = answer["signingKey"] = signing.new_key()
    app.callback_url = url
    app.save()
    return answer
