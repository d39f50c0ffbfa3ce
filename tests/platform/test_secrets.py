"""Secrets at rest: never in clear in the database, never returned, rotatable."""

import subprocess

import pytest
from cryptography.fernet import Fernet
from helpers import DATABASE_URL, OWM_KEY

from thingbridge import crypto
from thingbridge.models import ConnectorInstance
from thingbridge.secrets_rotation import rotate_all

NETATMO = {"connector_type_id": "netatmo", "configuration": {
    "client_id": "thingbridge-demo", "client_secret": "demo-secret",
    "origin_callback_uri": "http://localhost:3000/connected"}}


def _dump() -> str:
    return subprocess.run(["pg_dump", "--data-only", DATABASE_URL], capture_output=True,
                          text=True, check=True).stdout


def test_database_dump_has_no_secret_in_clear(api):
    assert api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap", "configuration": {"app_key": OWM_KEY}}
    ).status_code == 201
    assert api.post("/api/v1/connectors/instances", json=NETATMO).status_code == 201
    dump = _dump()
    assert "demo-secret" not in dump and OWM_KEY not in dump
    assert api.secret not in dump and api.token not in dump  # app secret hashed, token hashed
    assert "thingbridge-demo" not in dump  # the whole configuration is encrypted


def test_rotation_reencrypts_with_the_new_key(api, flask_app, monkeypatch):
    """The instance side; tests/workers/test_key_rotation.py covers every encrypted column."""
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())  # restored after the test
    instance_id = api.post("/api/v1/connectors/instances", json=NETATMO).json["id"]
    old_key = flask_app.config["SECRET_KEYS"]
    new_key = Fernet.generate_key().decode()
    crypto.configure(f"{new_key},{old_key}")
    assert rotate_all() >= 1
    crypto.configure(new_key)  # the old key is retired: everything must still decrypt
    config = ConnectorInstance.get_by_id(instance_id).configuration
    assert config["client_secret"] == "demo-secret"


def test_unknown_key_fails_loudly_not_silently(api, monkeypatch):
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())  # restored after the test
    instance_id = api.post("/api/v1/connectors/instances", json=NETATMO).json["id"]
    crypto.configure(Fernet.generate_key().decode())
    with pytest.raises(crypto.SecretKeyError):
        ConnectorInstance.get_by_id(instance_id).configuration  # noqa: B018


def test_invalid_key_configuration_is_rejected():
    with pytest.raises(crypto.SecretKeyError):
        crypto.configure("not-a-fernet-key")
    with pytest.raises(crypto.SecretKeyError):
        crypto.configure(" , ")
