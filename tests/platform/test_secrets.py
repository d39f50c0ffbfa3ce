"""Secrets at rest: never in clear in the database, never returned, rotatable."""

import subprocess

import pytest
from cryptography.fernet import Fernet
from helpers import DATABASE_URL, OWM_KEY
from peewee import Value

from thingbridge import crypto, secrets_rotation
from thingbridge.db import db
from thingbridge.models import App, ConnectorInstance
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
    assert sum(column.rotated for column in rotate_all()) >= 1
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


def _apps_with_signing_keys(count: int) -> list[App]:
    apps = [App.register(f"app-{n}")[0] for n in range(count)]
    for app in apps:
        App.update(signing_key={"key": app.name}).where(App.id == app.id).execute()
    return apps


def _stored(app: App) -> str:
    # The cursor's row: the ciphertext, not the field's decrypted value.
    return db.execute(App.select(App.signing_key).where(App.id == app.id)).fetchone()[0]


def test_rotation_keeps_a_value_written_while_it_runs(clean_db, flask_app, monkeypatch):
    """A value written between the rotation's read of a batch and its write (by a process
    already on the new key list) stays as written, not the old value re-encrypted."""
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())  # restored after the test
    apps = _apps_with_signing_keys(3)
    new_key = Fernet.generate_key().decode()
    crypto.configure(f"{new_key},{flask_app.config['SECRET_KEYS']}")
    read_batch = secrets_rotation._read_batch
    written = []

    def read_then_someone_writes(model, column, after, size):
        batch = read_batch(model, column, after, size)
        if column is App.signing_key and after is None:  # a row of the first batch, by id
            written.append(batch[-1][0])
            App.update(signing_key={"key": "rotated by the app"}).where(
                App.id == written[0]).execute()
        return batch

    monkeypatch.setattr(secrets_rotation, "_read_batch", read_then_someone_writes)
    [signing] = [c for c in rotate_all(size=2) if c.name == "app.signing_key"]
    assert (signing.rotated, signing.written_meanwhile, signing.unreadable) == (2, 1, [])
    crypto.configure(new_key)  # the old key retired: everything still reads
    assert {app.id: app.signing_key["key"] for app in App.select()} == {
        app.id: "rotated by the app" if app.id == written[0] else app.name for app in apps}


def test_rotation_names_unreadable_values_and_rotates_the_rest(clean_db, flask_app,
                                                               monkeypatch):
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())  # restored after the test
    apps = _apps_with_signing_keys(3)
    lost = Fernet(Fernet.generate_key()).encrypt(b'{"key": "lost"}').decode()
    App.update({App.signing_key: Value(lost, converter=False)}).where(
        App.id == apps[1].id).execute()
    new_key = Fernet.generate_key().decode()
    crypto.configure(f"{new_key},{flask_app.config['SECRET_KEYS']}")
    [signing] = [c for c in rotate_all(size=2) if c.name == "app.signing_key"]
    assert (signing.rotated, signing.unreadable) == (2, [apps[1].id])
    assert _stored(apps[1]) == lost  # left as it was
    crypto.configure(new_key)
    assert [App.get_by_id(apps[n].id).signing_key["key"] for n in (0, 2)] == ["app-0", "app-2"]
