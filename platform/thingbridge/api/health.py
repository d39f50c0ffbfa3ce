"""GET /health: can this process reach its database and broker, and do its keys read the
secrets stored there? (no token)

Anyone may ask whether each dependency is ok; only the operator also reads why one is failing
(the first line of the error), which can name hosts, ports and users: a caller with the
metrics token (THINGBRIDGE_METRICS_TOKEN), or anyone in the embedded mode, which runs on the
developer's machine. An app's token is a tenant's credential, not the operator's."""

from __future__ import annotations

import time

from flask import current_app, request
from marshmallow import Schema, fields, validate

from thingbridge import tasks
from thingbridge.api.common import Blueprint
from thingbridge.crypto import SecretKeyError, keyring
from thingbridge.db import db, is_postgres
from thingbridge.observability.exposition import operator_token_in
from thingbridge.secrets_rotation import check_keys_read_stored_secrets

blp = Blueprint("health", __name__, description="Liveness of the platform's dependencies")
STATUSES = ("ok", "error")


class CheckOut(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    detail = fields.String(metadata={"description": "Why it failed: only with the metrics token"})


class HealthOut(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckOut), required=True,
                         metadata={"description": "database, broker, secrets"})


def _check_database() -> None:
    db.execute_sql("SELECT 1").fetchone()


# The secrets check reads two rows per encrypted column, unindexed on created_at (a scan of
# the clients): done at most this often per process for the same keys, not per probe. One the
# database failed (a lock held, a statement timeout: up to 10 s each) is tried again sooner,
# but not by every probe: probes would pile scans onto a struggling database and hold a sync
# worker each.
SECRETS_CHECK_EVERY, SECRETS_RETRY = 60.0, 10.0
_secrets_checked: dict = {"keys": None, "until": 0.0, "failure": None}
NOT_CHECKED = "not checked: the database check failed"


def _check_secrets() -> None:
    checked, keys, now = _secrets_checked, keyring(), time.monotonic()
    if checked["keys"] is not keys or now >= checked["until"]:
        failure, every = None, SECRETS_CHECK_EVERY
        try:
            check_keys_read_stored_secrets()
        except SecretKeyError as exc:
            failure = exc
        except Exception as exc:  # noqa: BLE001 - the database's: reported, tried again soon
            failure, every = exc, SECRETS_RETRY
        checked.update(keys=keys, until=now + every, failure=failure)
    if checked["failure"] is not None:
        raise checked["failure"]


def _check_broker() -> None:
    if paused := tasks.sends_paused():  # a probe would wait out the same broker every time
        raise ConnectionError(f"a send to the broker failed moments ago; tried again in "
                              f"{paused:.0f} s")
    celery = current_app.extensions["celery"]
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _failure(check) -> str | None:
    """Why ``check`` fails (the first line of its error), or None when it passes."""
    try:
        check()
    except Exception as exc:  # any driver error means "not reachable"
        return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return None


def _may_read_details() -> bool:
    if not is_postgres():
        return True  # the embedded mode: the developer's own machine
    return operator_token_in(request.headers.get("Authorization", ""))


@blp.route("/health", methods=["GET"])
@blp.doc(security=[{}, {"bearerAuth": []}])  # no token needed; the metrics token adds details
@blp.response(200, HealthOut, description="All dependencies reachable")
@blp.alt_response(503, schema=HealthOut, description="A dependency is down; see checks")
def health():
    """Database and broker reachability, and whether the keys read the stored secrets (why
    one fails: with the operator's metrics token only)"""
    database = _failure(_check_database)
    # Without the database the secrets cannot be read: no scan to wait out a second time.
    failures = {"database": database, "broker": _failure(_check_broker),
                "secrets": NOT_CHECKED if database else _failure(_check_secrets)}
    if not any(failures.values()):
        return {"status": "ok", "checks": {name: {"status": "ok"} for name in failures}}
    detailed = _may_read_details()
    checks = {name: {"status": "ok"} if why is None else
              {"status": "error", **({"detail": why} if detailed else {})}
              for name, why in failures.items()}
    return {"status": "error", "checks": checks}, 503
