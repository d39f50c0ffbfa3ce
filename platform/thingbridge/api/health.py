"""GET /health: can this process reach its database and broker? (no token)"""

from __future__ import annotations

from flask import current_app, jsonify

from thingbridge.api.common import Blueprint
from thingbridge.db import db

blp = Blueprint("health", __name__, description="Liveness of the platform's dependencies")


def _check_database() -> dict:
    try:
        db.execute_sql("SELECT 1").fetchone()
        return {"status": "ok"}
    except Exception as exc:  # any driver error means "not reachable"
        return {"status": "error", "detail": str(exc).splitlines()[0][:200]}


def _check_broker() -> dict:
    try:
        celery = current_app.extensions["celery"]
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"status": "ok"}
    except Exception as exc:
        return {"status": "error", "detail": str(exc).splitlines()[0][:200]}


@blp.route("/health", methods=["GET"])
@blp.doc(responses={"200": {"description": "All dependencies reachable"},
                    "503": {"description": "A dependency is down; see checks"}})
def health():
    """Database and broker reachability"""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(c["status"] == "ok" for c in checks.values())
    return jsonify({"status": "ok" if healthy else "error", "checks": checks}), (
        200 if healthy else 503)
