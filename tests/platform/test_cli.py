"""The ``thingbridge`` maintenance commands through click's runner, on both databases:
``migrate`` (and ``--down``), ``create-app`` / ``app create``, ``rotate-secrets``; production
mode (PostgreSQL) refuses to start without its required settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from helpers import DATABASE_URL, PUBLIC_BASE_URL, wait_until
from peewee import Value

from thingbridge import crypto
from thingbridge.cli import main
from thingbridge.db import MIGRATION_LOCK, MIGRATIONS_DIR, db
from thingbridge.models import App

THINGBRIDGE = str(Path(sys.executable).parent / "thingbridge")
MIGRATIONS = sorted(p.stem for p in MIGRATIONS_DIR.glob("0*.py"))
# Named after the session's database, so suites of several checkouts never share it.
SCRATCH = DATABASE_URL.rsplit("/", 1)[1] + "_cli"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    admin = psycopg.connect(DATABASE_URL, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {SCRATCH}")
    yield DATABASE_URL.rsplit("/", 1)[0] + "/" + SCRATCH
    db.close()  # the commands' connection, before the database goes
    admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    admin.close()


@pytest.fixture
def cli(second_app, database_url, tmp_path):
    """Run a command as an operator would, against ``database_url``; returns its output.
    ``second_app`` restores the globals each command's create_app replaces."""
    runner = CliRunner()
    base = {"THINGBRIDGE_DATABASE_URL": database_url, "THINGBRIDGE_BROKER_URL": "memory://",
            "THINGBRIDGE_VAR_DIR": str(tmp_path / "var"),
            "THINGBRIDGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "THINGBRIDGE_SECRET_KEYS": Fernet.generate_key().decode()}

    def run(*args, ok=True, **env):
        result = runner.invoke(main, list(args), env={**base, **env}, catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    run.env = base
    return run


def test_migrate_apps_rotate_and_down(cli, database_url):
    applied = cli("migrate")
    assert applied.split() == [w for n in MIGRATIONS for w in ("applied:", n)]
    assert cli("migrate").strip() == "nothing to do"

    created = dict(line.split("=", 1) for line in cli("create-app", "legacy").splitlines())
    grouped = dict(line.split("=", 1)
                   for line in cli("app", "create", "backend", "--scope",
                                   "thingbridge.events").splitlines())
    with db.connection_context():
        apps = {a.client_id: a for a in App.select()}
        assert apps[created["client_id"]].name == "legacy"
        assert apps[grouped["client_id"]].scopes == "thingbridge.events"
        assert apps[created["client_id"]].check_client_secret(created["client_secret"])
        App.update(signing_key={"key": "k1"}).execute()  # two encrypted values

    old_key, new_key = cli.env["THINGBRIDGE_SECRET_KEYS"], Fernet.generate_key().decode()
    rotated = cli("rotate-secrets", THINGBRIDGE_SECRET_KEYS=f"{new_key},{old_key}")
    assert "app.signing_key: 2 re-encrypted, 0 written meanwhile (kept), 0 unreadable" in rotated
    assert rotated.splitlines()[-1] == "re-encrypted 2 values"
    crypto.configure(new_key)  # the old key retired (second_app restores the keyring)
    with db.connection_context():
        assert [a.signing_key for a in App.select()] == [{"key": "k1"}] * 2

    reverted = cli("migrate", "--down", THINGBRIDGE_SECRET_KEYS=new_key)
    assert reverted.split() == ["reverted:", MIGRATIONS[-1]]
    assert cli("migrate", THINGBRIDGE_SECRET_KEYS=new_key).split() == ["applied:",
                                                                        MIGRATIONS[-1]]


def test_production_needs_keys_and_public_url(cli, database_url):
    if database_url.startswith("sqlite"):
        # Embedded: a development key is made up and kept in the var directory.
        assert "applied:" in cli("migrate", THINGBRIDGE_SECRET_KEYS=None,
                                 THINGBRIDGE_PUBLIC_BASE_URL=None)
        return
    refused = cli("migrate", ok=False, THINGBRIDGE_SECRET_KEYS=None,
                  THINGBRIDGE_PUBLIC_BASE_URL=None)
    assert "names a shared database" in refused
    assert "THINGBRIDGE_SECRET_KEYS" in refused and "THINGBRIDGE_PUBLIC_BASE_URL" in refused


def test_rotate_secrets_names_what_it_cannot_read(cli, database_url):
    cli("migrate")
    ids = [dict(line.split("=", 1) for line in cli("app", "create", name).splitlines())
           ["client_id"] for name in ("a", "b")]
    lost = Fernet(Fernet.generate_key()).encrypt(b'"lost"').decode()
    with db.connection_context():
        App.update(signing_key={"key": "k1"}).execute()
        App.update({App.signing_key: Value(lost, converter=False)}).where(
            App.client_id == ids[1]).execute()
        lost_id = App.select(App.id).where(App.client_id == ids[1]).get().id
    old_key, new_key = cli.env["THINGBRIDGE_SECRET_KEYS"], Fernet.generate_key().decode()
    refused = cli("rotate-secrets", "--batch", "1", ok=False,
                  THINGBRIDGE_SECRET_KEYS=f"{new_key},{old_key}")
    assert "re-encrypted 1 values" in refused
    assert "1 values no key of THINGBRIDGE_SECRET_KEYS decrypts" in refused
    assert f"app.signing_key id={lost_id}" in refused
    assert "Traceback" not in refused


def test_worker_starts_degraded_and_says_why_when_its_keys_cannot_read_the_secrets(
        cli, database_url, monkeypatch):
    started = []
    monkeypatch.setattr("thingbridge.cli.supervise", lambda children: started.append(1) or 0)
    cli("migrate")
    cli("app", "create", "a")
    with db.connection_context():
        App.update(signing_key={"key": "k1"}).execute()
    assert "Warning" not in cli("worker")
    lost = cli("worker", THINGBRIDGE_SECRET_KEYS=Fernet.generate_key().decode())
    assert lost.startswith("Warning: stored secrets cannot be decrypted with "
                           "THINGBRIDGE_SECRET_KEYS (app.signing_key): was a key removed "
                           "before `thingbridge rotate-secrets`? Starting anyway")
    assert started == [1, 1]


@pytest.mark.parametrize("url", ["postgresql://postgres:pw@127.0.0.1:1/nowhere",
                                 "sqlite:////nonexistent/folder/thingbridge.db"])
def test_commands_on_a_database_that_cannot_be_used_say_so_in_one_line(second_app, tmp_path,
                                                                        url):
    env = {"THINGBRIDGE_DATABASE_URL": url, "THINGBRIDGE_BROKER_URL": "memory://",
           "THINGBRIDGE_VAR_DIR": str(tmp_path), "THINGBRIDGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
           "THINGBRIDGE_SECRET_KEYS": Fernet.generate_key().decode()}
    for command in (["migrate"], ["app", "list"], ["app", "create", "a"], ["rotate-secrets"]):
        result = CliRunner().invoke(main, command, env=env, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        [line] = result.output.splitlines()
        assert line.startswith(f"Error: the database cannot be used (THINGBRIDGE_DATABASE_URL="
                               f"{url.replace(':pw@', ':***@')}): ")
        assert "pw@" not in line


def _migrate(cli) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("THINGBRIDGE_")}
    return subprocess.Popen([THINGBRIDGE, "migrate"], env={**env, **cli.env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_migrates_at_once_run_one_after_the_other(cli, database_url):
    holder = psycopg.connect(database_url, autocommit=True)
    try:
        # While another migrate holds the lock, a migrate waits and changes nothing.
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        waiting = _migrate(cli)
        wait_until(lambda: holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0] == 1, message="migrate waiting for the lock")
        assert holder.execute("SELECT to_regclass('schema_migration')").fetchone()[0] is None
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert "another thingbridge migrate is running; waiting for it" in err
        assert out.split() == [w for n in MIGRATIONS for w in ("applied:", n)]
    finally:
        holder.close()
    # Two racing on an empty database: one applies everything, the other has nothing to do.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    racers = [_migrate(cli) for _ in range(2)]
    outcomes = [(racer.communicate(timeout=120), racer.returncode) for racer in racers]
    assert [code for _, code in outcomes] == [0, 0], outcomes
    assert sorted(out.strip().splitlines()[0] for (out, _), _ in outcomes) == [
        f"applied: {MIGRATIONS[0]}", "nothing to do"]
