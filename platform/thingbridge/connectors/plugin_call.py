"""The one way the host calls a plugin for a client, whether to poll it or to act on it.

The plugin gets the decrypted configurations and a fresh access token. When the provider
refuses a token the host thought valid (``TokenRejected``: revoked early, clock skew), the token
is refreshed once, under the client's lock, and the call is made again; a second refusal
propagates as the transient error it is.

Whatever else a plugin raises (a provider's answer of a shape it did not expect, or its own
bug) is a :class:`PluginFailed`: a transient failure the host backs off from, with the
traceback in the log, as Home Assistant's coordinator treats an unexpected error; never a
crashed task retried at full speed or a 500.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TypeVar

from flask import current_app

from thingbridge.connectors import oauth
from thingbridge.connectors.contract import (
    ClientContext,
    Connector,
    ConnectorError,
    TokenRejected,
    TransientError,
)
from thingbridge.http import bounded
from thingbridge.http.breaker import ProviderPaused
from thingbridge.models import ConnectorClient

log = logging.getLogger(__name__)
Result = TypeVar("Result")


class PluginFailed(TransientError):
    """A plugin raised outside its contract."""


class RefreshNeeded(Exception):
    """The call needs the client's token refreshed, which its caller leaves to a worker."""


def guarded(connector: Connector, operation: Callable[..., Result], *args) -> Result:
    """``operation(*args)``, plugin code, with anything it raises outside the contract turned
    into :class:`PluginFailed`."""
    try:
        return operation(*args)
    except TransientError as exc:
        if isinstance(exc.__cause__, ProviderPaused):  # its own words, not the plugin's
            raise TransientError(str(exc.__cause__)) from exc
        raise
    except ConnectorError:
        raise
    except Exception as exc:
        log.exception("the %s connector failed in %s", connector.type_id,
                      getattr(operation, "__qualname__", operation))
        # The class only: the reason is shown to the app and its end user.
        raise PluginFailed(f"the {connector.type_id} connector could not read the provider's "
                           f"answer ({exc.__class__.__name__})") from exc


def lease_budget() -> float:
    """Seconds the provider calls of work held for ``TASK_LEASE`` may take together: three
    quarters of it, the rest left for the work's own writes, so no second task takes the work
    over while its calls still run."""
    return 0.75 * current_app.config["TASK_LEASE"]


def call_plugin(connector: Connector, client: ConnectorClient,
                operation: Callable[[ClientContext], Result], budget: float,
                refresh: bool = True) -> Result:
    """``operation(ctx)`` for ``client`` (whose ``instance`` is loaded), its provider calls
    (token refreshes included) ending within ``budget`` seconds together. Without
    ``refresh``, :class:`RefreshNeeded` before a refresh, whether the token is due for one or
    the provider rejected it: nothing was performed."""
    with bounded.within(budget):
        return _call(connector, client, operation, refresh)


def _call(connector: Connector, client: ConnectorClient,
          operation: Callable[[ClientContext], Result], refresh: bool) -> Result:
    instance_config = client.instance.configuration
    # Copies: what the poll read must stay as read (record_error compares it with what is
    # stored), whatever a plugin does with its own.
    ctx = ClientContext(copy.deepcopy(instance_config), copy.deepcopy(client.configuration or {}))
    if connector.auth_kind != "oauth2":
        return guarded(connector, operation, ctx)
    if not refresh and not oauth.fresh(client):
        raise RefreshNeeded()
    ctx.access_token = oauth.access_token(client.id, connector, instance_config, client=client)
    try:
        return guarded(connector, operation, ctx)
    except TokenRejected:
        if not refresh:
            raise RefreshNeeded() from None
        ctx.access_token = oauth.access_token(client.id, connector, instance_config,
                                              force_refresh=True, client=client)
    return guarded(connector, operation, ctx)
