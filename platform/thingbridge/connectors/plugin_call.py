"""The one way the host calls a plugin for a client, whether to poll it or to act on it.

The plugin gets the decrypted configurations and a fresh access token. When the provider
refuses a token the host thought valid (``TokenRejected``: revoked early, clock skew), the token
is refreshed once, under the client's lock, and the call is made again; a second refusal
propagates as the transient error it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from thingbridge.connectors import oauth
from thingbridge.connectors.contract import ClientContext, Connector, TokenRejected
from thingbridge.models import ConnectorClient

Result = TypeVar("Result")


def call_plugin(connector: Connector, client: ConnectorClient,
                operation: Callable[[ClientContext], Result]) -> Result:
    """``operation(ctx)`` for ``client`` (whose ``instance`` is loaded)."""
    instance_config = client.instance.configuration
    ctx = ClientContext(instance_config, client.configuration or {})
    if connector.auth_kind != "oauth2":
        return operation(ctx)
    ctx.access_token = oauth.access_token(client.id, connector, instance_config, client=client)
    try:
        return operation(ctx)
    except TokenRejected:
        ctx.access_token = oauth.access_token(client.id, connector, instance_config,
                                              force_refresh=True, client=client)
    return operation(ctx)
