"""Rotating THINGBRIDGE_SECRET_KEYS: every encrypted column (instance and client configuration,
client OAuth tokens, webhook secrets, action signing keys) is re-encrypted, still reads after
the old key is retired, and a worker holding only the new key signs with the same secrets."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from flows import client_row, consent, owm_client, wait_status
from helpers import LAMP, OWM_KEY, wait_until

from thingbridge import crypto
from thingbridge.actions import signing
from thingbridge.db import db
from thingbridge.models import (
    ActionRequest,
    App,
    ConnectorClient,
    ConnectorInstance,
    WebhookEndpoint,
)
from thingbridge.outbox import webhook_signing
from thingbridge.secrets_rotation import rotate_all

THINGS = "/api/v1/things"


SECRET_COLUMNS = ((ConnectorInstance, ["configuration"]),
                  (ConnectorClient, ["configuration", "tokens"]),
                  (WebhookEndpoint, ["secrets"]), (App, ["signing_key"]))


def _ciphertexts() -> dict[str, str]:
    """Every encrypted column as stored (Fernet tokens), by table, row and column."""
    stored = {}
    for model, columns in SECRET_COLUMNS:
        names = [getattr(model, c).column_name for c in columns]
        query = f'SELECT id, {", ".join(names)} FROM "{model._meta.table_name}"'
        for row in db.execute_sql(query):
            for column, value in zip(columns, row[1:], strict=True):
                if value is not None:
                    stored[f"{model.__name__}.{row[0]}.{column}"] = value
    return stored


def _plaintexts() -> dict[str, object]:
    return {f"{model.__name__}.{row.id}.{column}": getattr(row, column)
            for model, columns in SECRET_COLUMNS for row in model.select()
            for column in columns if getattr(row, column) is not None}


def test_rotation_covers_every_secret_and_the_new_key_alone_signs(
        api, flask_app, monkeypatch, netatmo_sim, owm_sim, receiver, start_worker):
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())  # restored after the test
    netatmo = consent(api)["client_id"]  # creates the Netatmo instance (client secret)
    assert api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OWM_KEY}}).status_code == 201
    owm = owm_client(api)
    hook = api.post("/api/v1/webhooks", json={"url": receiver.url + "/hook"}).json
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": receiver.url}).json["signingKey"]
    assert client_row(netatmo).tokens["access_token"] and client_row(owm).configuration
    before, ciphertext = _plaintexts(), _ciphertexts()
    assert len(ciphertext) >= 6  # two instances, two clients (+ tokens), a hook, a signing key

    old_key, new_key = flask_app.config["SECRET_KEYS"], Fernet.generate_key().decode()
    crypto.configure(f"{new_key},{old_key}")
    assert sum(column.rotated for column in rotate_all()) == len(ciphertext)
    crypto.configure(new_key)  # the old key is retired
    after = _ciphertexts()
    assert after.keys() == ciphertext.keys()
    assert all(after[name] != ciphertext[name] for name in after)  # every value rewritten
    assert _plaintexts() == before

    # A worker that has only the new key delivers an action and a webhook, signed with the
    # secrets the app was given before the rotation.
    start_worker(beat=True, env={"THINGBRIDGE_SECRET_KEYS": new_key})
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    request_id = api.post(f"{THINGS}/{thing_id}/components/switch/actions/setOn",
                          json={"on": "true"}).json["id"]
    wait_until(lambda: ActionRequest.get_by_id(request_id).status == "COMPLETED",
               message="action delivered")
    [action] = [r for r in receiver.requests if r["url"] == receiver.url]
    assert signing.verify(key, "POST", receiver.url, action["headers"]["Date"], action["body"],
                          action["headers"][signing.SIGNATURE_HEADER]) is None
    hooked = wait_until(lambda: [r for r in receiver.requests if r["url"].endswith("/hook")],
                        message="webhook delivered")
    headers, body = hooked[0]["headers"], hooked[0]["body"]
    assert json.loads(body)["type"]
    assert webhook_signing.verify(hook["secret"], headers["Webhook-Id"],
                                  headers["Webhook-Timestamp"], headers["Webhook-Signature"],
                                  body)
    # The worker refreshed nothing it could not read: the Netatmo client still polls.
    assert wait_status(netatmo, "STARTED").status_reason is None

