"""Production refuses unsafe defaults: a shared database needs explicit keys and a public base
URL; the embedded SQLite mode keeps generating its own key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY

from thingbridge.config import ConfigError, load_settings

THINGBRIDGE = str(Path(sys.executable).parent / "thingbridge")


@pytest.fixture
def environment(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("THINGBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("THINGBRIDGE_VAR_DIR", str(tmp_path))
    return monkeypatch


def test_postgresql_without_keys_or_public_url_refuses_to_start(environment, tmp_path):
    environment.setenv("THINGBRIDGE_DATABASE_URL", DATABASE_URL)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "THINGBRIDGE_SECRET_KEYS" in str(refused.value)
    assert "THINGBRIDGE_PUBLIC_BASE_URL" in str(refused.value)
    assert not (tmp_path / "secret.keys").exists()  # no key quietly generated
    environment.setenv("THINGBRIDGE_SECRET_KEYS", SECRET_KEY)
    with pytest.raises(ConfigError, match="THINGBRIDGE_PUBLIC_BASE_URL") as refused:
        load_settings()
    assert "THINGBRIDGE_SECRET_KEYS" not in str(refused.value)
    environment.setenv("THINGBRIDGE_PUBLIC_BASE_URL", PUBLIC_BASE_URL)
    settings = load_settings()
    assert settings["SECRET_KEYS"] == SECRET_KEY
    assert settings["MAX_CONTENT_LENGTH"] == 1024 * 1024


def test_embedded_mode_generates_and_keeps_its_key(environment, tmp_path):
    first = load_settings()
    assert first["DATABASE_URL"].startswith("sqlite")
    assert first["SECRET_KEYS"] == (tmp_path / "secret.keys").read_text().strip()
    assert load_settings()["SECRET_KEYS"] == first["SECRET_KEYS"]
    assert (tmp_path / "secret.keys").stat().st_mode & 0o077 == 0


def test_body_limit_is_configurable(environment):
    environment.setenv("THINGBRIDGE_MAX_BODY", "2048")
    assert load_settings()["MAX_CONTENT_LENGTH"] == 2048


def test_the_command_says_what_is_missing(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("THINGBRIDGE_")}
    env.update(THINGBRIDGE_DATABASE_URL=DATABASE_URL, THINGBRIDGE_VAR_DIR=str(tmp_path))
    result = subprocess.run([THINGBRIDGE, "migrate"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "Error: THINGBRIDGE_DATABASE_URL names a shared database" in result.stderr
    assert "THINGBRIDGE_SECRET_KEYS" in result.stderr and "Traceback" not in result.stderr


def test_outbound_allow_list_defaults_and_the_older_switch(environment):
    assert load_settings()["OUTBOUND_ALLOW"] == "127.0.0.0/8,::1/128"  # embedded: loopback
    production = {"DATABASE_URL": DATABASE_URL, "SECRET_KEYS": SECRET_KEY,
                  "PUBLIC_BASE_URL": PUBLIC_BASE_URL}
    assert load_settings(production)["OUTBOUND_ALLOW"] == ""  # production opens nothing
    environment.setenv("THINGBRIDGE_OUTBOUND_ALLOW", "10.1.0.0/16")
    environment.setenv("THINGBRIDGE_ALLOW_HTTP_LOOPBACK", "1")
    assert load_settings(production)["OUTBOUND_ALLOW"] == "10.1.0.0/16,127.0.0.0/8,::1/128"
    environment.setenv("THINGBRIDGE_OUTBOUND_ALLOW", "10.1.0.0/16,intranet")
    with pytest.raises(ValueError, match="'intranet' is not a CIDR range"):
        load_settings(production)
