"""Production refuses unsafe defaults: a shared database needs explicit keys and a public base
URL; the embedded SQLite mode keeps generating its own key. A setting of the wrong type, out of
range, or contradicting another stops the start with one line per variable."""

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
    with pytest.raises(ConfigError, match="'intranet' is not a CIDR range"):
        load_settings(production)


def test_every_unusable_setting_is_named_with_its_value(environment):
    for name, value in {"TASK_LEASE": "abc", "HTTP_TIMEOUT": "-1", "MAX_BODY": "1e3",
                        "WEBHOOK_TIMEOUT": "inf", "LOG_FORMAT": "yaml", "WEBHOOKS_PER_APP": "-5",
                        "PUBLIC_BASE_URL": "iot.example.com", "NETATMO_POLL_INTERVAL": "1.5",
                        "NETATMO_BASE_URL": "ftp://sim", "NETATMO_PKCE": "maybe",
                        "OPENWEATHERMAP_RATE_LIMIT": "-1"}.items():
        environment.setenv(f"THINGBRIDGE_{name}", value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    lines = str(refused.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "THINGBRIDGE_HTTP_TIMEOUT=-1", "THINGBRIDGE_LOG_FORMAT=yaml", "THINGBRIDGE_MAX_BODY=1e3",
        "THINGBRIDGE_PUBLIC_BASE_URL=iot.example.com", "THINGBRIDGE_TASK_LEASE=abc",
        "THINGBRIDGE_WEBHOOKS_PER_APP=-5", "THINGBRIDGE_WEBHOOK_TIMEOUT=inf",
        "THINGBRIDGE_NETATMO_BASE_URL=ftp", "THINGBRIDGE_NETATMO_PKCE=maybe",
        "THINGBRIDGE_NETATMO_POLL_INTERVAL=1.5", "THINGBRIDGE_OPENWEATHERMAP_RATE_LIMIT=-1"]
    assert "Not a valid number" in lines[4] and "greater than 0" in lines[0]


def test_a_lease_shorter_than_the_work_it_holds_is_refused(environment):
    # A webhook lane's lease must outlast an attempt and the run it ends: else a second sender
    # takes the lane while the first still waits for the receiver (twice, out of order).
    environment.setenv("THINGBRIDGE_WEBHOOK_LEASE", "5")
    with pytest.raises(ConfigError, match=r"WEBHOOK_LEASE=5: must be longer than "
                                          r"THINGBRIDGE_WEBHOOK_TIMEOUT \(10\) plus 1 s"):
        load_settings()
    environment.setenv("THINGBRIDGE_WEBHOOK_TIMEOUT", "3.5")
    assert load_settings()["WEBHOOK_LEASE"] == 5
    # Webhooks take the callbacks' timeout when they have none of their own, so a long one
    # outlasts both default leases, and both are named with their defaults.
    environment.delenv("THINGBRIDGE_WEBHOOK_LEASE")
    environment.delenv("THINGBRIDGE_WEBHOOK_TIMEOUT")
    environment.setenv("THINGBRIDGE_OUTBOUND_TIMEOUT", "90")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "THINGBRIDGE_TASK_LEASE=60 (default): must be longer than " \
        "THINGBRIDGE_OUTBOUND_TIMEOUT (90)" in str(refused.value)
    assert "THINGBRIDGE_WEBHOOK_LEASE=60 (default)" in str(refused.value)
    environment.setenv("THINGBRIDGE_TASK_LEASE", "120")
    environment.setenv("THINGBRIDGE_WEBHOOK_LEASE", "120")
    assert load_settings()["WEBHOOK_TIMEOUT"] == 90


def test_blank_variables_mean_defaults_and_unset_provider_settings_stay_the_connectors(
        environment):
    environment.setenv("THINGBRIDGE_TASK_LEASE", "")
    environment.setenv("THINGBRIDGE_LOG_FORMAT", "JSON")
    environment.setenv("THINGBRIDGE_NETATMO_POLL_INTERVAL", "30")
    environment.setenv("THINGBRIDGE_NETATMO_PKCE", "Yes")
    settings = load_settings()
    assert settings["TASK_LEASE"] == 60 and settings["LOG_FORMAT"] == "json"
    assert {key: value for key, value in settings.items() if key.startswith("NETATMO_")} == {
        "NETATMO_POLL_INTERVAL": 30, "NETATMO_PKCE": "yes"}


@pytest.mark.parametrize("command", ["worker", "beat", "api", "run"])
def test_a_process_with_an_unusable_setting_does_not_start(tmp_path, command):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("THINGBRIDGE_")}
    env.update(THINGBRIDGE_VAR_DIR=str(tmp_path), THINGBRIDGE_DISPATCH_INTERVAL="0")
    result = subprocess.run([THINGBRIDGE, command], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: settings that cannot be used:\n  "
                                    "THINGBRIDGE_DISPATCH_INTERVAL=0: Must be greater than 0")
    assert "Traceback" not in result.stderr and not (tmp_path / "thingbridge.db").exists()


def test_unusable_keys_and_database_urls_are_named_without_their_secrets(environment):
    for keys, why in {"not-a-key": "key 1 of 1 is not a Fernet key",
                      f"{SECRET_KEY}, x": "key 2 of 2 is not a Fernet key",
                      " , ,": "holds no key"}.items():
        environment.setenv("THINGBRIDGE_SECRET_KEYS", keys)
        with pytest.raises(ConfigError) as refused:
            load_settings()
        assert f"THINGBRIDGE_SECRET_KEYS=<hidden>: {why}" in str(refused.value)
        assert SECRET_KEY not in str(refused.value)
    environment.setenv("THINGBRIDGE_SECRET_KEYS", SECRET_KEY)
    for url in ("postgressql://ops:s3cret@db/iot", "mysql://ops:s3cret@db/iot", "notaurl"):
        environment.setenv("THINGBRIDGE_DATABASE_URL", url)
        with pytest.raises(ConfigError) as refused:
            load_settings()
        assert "must start with one of postgres://, postgresql://, sqlite://" in \
            str(refused.value)
        assert "s3cret" not in str(refused.value)
    assert "THINGBRIDGE_DATABASE_URL=mysql://ops:***@db/iot: " in str(
        pytest.raises(ConfigError, load_settings, {"DATABASE_URL": "mysql://ops:s3cret@db/iot"})
        .value)


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_supervised_process_with_an_unusable_key_or_url_does_not_start(tmp_path, command):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("THINGBRIDGE_")}
    env.update(THINGBRIDGE_VAR_DIR=str(tmp_path), THINGBRIDGE_SECRET_KEYS="not-a-key",
               THINGBRIDGE_DATABASE_URL="postgressql://localhost/iot")
    result = subprocess.run([THINGBRIDGE, command], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: settings that cannot be used:",
        "  THINGBRIDGE_DATABASE_URL=postgressql://localhost/iot: must start with one of "
        "postgres://, postgresql://, sqlite://",
        "  THINGBRIDGE_SECRET_KEYS=<hidden>: key 1 of 1 is not a Fernet key (32 url-safe "
        "base64-encoded bytes)"]


def test_broker_urls_and_hosts_with_underscores(environment):
    # A container's service name (netatmo_sim) is a name resolvers take, whatever fields.Url
    # thinks of it.
    environment.setenv("THINGBRIDGE_NETATMO_BASE_URL", "http://netatmo_sim:8092")
    environment.setenv("THINGBRIDGE_PUBLIC_BASE_URL", "http://api_gw:8080/")
    assert load_settings()["NETATMO_BASE_URL"] == "http://netatmo_sim:8092"
    environment.setenv("THINGBRIDGE_EVENT_BROKERS",
                       "amqp://tb:s3cret@rabbit:5672/,kafka://tb:other@kafka:9092")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "unsupported scheme 'kafka'" in str(refused.value)
    assert "s3cret" not in str(refused.value) and "other" not in str(refused.value)


def test_a_bad_callback_timeout_is_named_once_and_publishers_outlast_an_attempt(environment):
    environment.setenv("THINGBRIDGE_OUTBOUND_TIMEOUT", "ten")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).splitlines()[1:] == [
        "  THINGBRIDGE_OUTBOUND_TIMEOUT=ten: Not a valid number."]
    environment.delenv("THINGBRIDGE_OUTBOUND_TIMEOUT")
    environment.setenv("THINGBRIDGE_PUBLISHER_LEASE", "31")  # 30 s attempt, 2 s turn
    with pytest.raises(ConfigError, match="PUBLISHER_LEASE=31: must be longer than a publish "
                                          "attempt may take with the wait for its turn"):
        load_settings()
