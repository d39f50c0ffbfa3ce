"""The ``thingbridge`` command: migrations, apps, and the API, worker and beat processes."""

from __future__ import annotations

import os
import sys

import click
from peewee import InterfaceError, OperationalError

from thingbridge import create_app
from thingbridge.config import PREFIX, ConfigError, load_settings, shown
from thingbridge.crypto import SecretKeyError
from thingbridge.models import ALL_SCOPES
from thingbridge.supervise import Child, supervise

CELERY_APP = "thingbridge_workers.celery_app:celery"


def _platform():
    """The Flask app for a command; a missing production setting is a clear error, not a
    traceback."""
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _check_settings() -> dict:
    """Before a long-running process starts: a bad setting is one clear message and exit 1
    here, not a child that fails the same way on every restart."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _warn_if_stored_secrets_unreadable(settings: dict) -> None:
    """A process whose keys cannot read the stored secrets starts all the same (degraded):
    the database may hold a few such rows among many that work, and what meets one says so
    (503 SECRET_UNREADABLE, a poll's reason, /health's secrets check). A database that cannot
    be reached or is not migrated yet is the process's own business once it runs."""
    from peewee import DatabaseError

    from thingbridge import crypto, db
    from thingbridge.secrets_rotation import check_keys_read_stored_secrets

    crypto.configure(settings["SECRET_KEYS"])
    database = db.open_database(settings["DATABASE_URL"], 1,
                                settings["DATABASE_CONNECT_TIMEOUT"])
    try:
        with database.connection_context():
            check_keys_read_stored_secrets()
    except crypto.SecretKeyError as exc:
        click.echo(f"Warning: {exc} Starting anyway: what needs those secrets fails until the "
                   "key is back in THINGBRIDGE_SECRET_KEYS, and /health answers 503.", err=True)
    except DatabaseError:
        pass
    finally:
        getattr(database, "close_all", database.close)()  # the child opens its own


def _find_app(client_id: str):
    from thingbridge.auth import credentials

    app = credentials.find(client_id)
    if app is None:
        raise click.ClickException(f"no app with client_id {client_id}")
    return app


class Commands(click.Group):
    """A database that cannot be reached or opened, or secrets no key decrypts, end a command
    with one line saying so and exit 1: the exceptions' messages say it all, their tracebacks
    (three chained, from the driver up) only hide it."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (OperationalError, InterfaceError) as exc:
            url = os.environ.get(f"{PREFIX}DATABASE_URL") or "the embedded SQLite file"
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise click.ClickException(f"the database cannot be used ({PREFIX}DATABASE_URL="
                                       f"{shown('DATABASE_URL', url)}): {why}") from exc
        except SecretKeyError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=Commands)
def main():
    """Thingbridge IoT connector platform. Configured by THINGBRIDGE_* environment variables."""


@main.command()
@click.option("--down", is_flag=True, help="Revert the most recent migration instead.")
def migrate(down):
    """Apply pending database migrations (or revert one with --down)."""
    from thingbridge import db
    from thingbridge.connectors import registry

    def waiting():
        click.echo("another thingbridge migrate is running; waiting for it", err=True)

    app = _platform()
    with db.db.connection_context(), db.migration_lock(waiting):
        names = db.migrator().down() if down else db.migrate_up()
        if not down:
            registry.sync_descriptions(app)
    click.echo("\n".join(f"{'reverted' if down else 'applied'}: {n}" for n in names)
               or "nothing to do")


@main.group("app")
def apps():
    """Apps (the platform's OAuth2 clients): create, list, rotate a secret, disable, enable."""


@apps.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(ALL_SCOPES),
              help="Allowed scope (repeatable); default: all.")
def create_app_command(name, scopes):
    """Register an app and print its client id and secret (the secret is shown only once)."""
    from thingbridge.db import db
    from thingbridge.models import App

    _platform()
    with db.connection_context():
        app, secret = App.register(name, scopes or ALL_SCOPES)
    click.echo(f"client_id={app.client_id}\nclient_secret={secret}\nscopes={app.scopes}")


main.add_command(create_app_command, "create-app")  # the name before `app create`


@apps.command("list")
def list_apps():
    """Every app: client id, name, state (active or disabled since) and scopes."""
    from thingbridge.db import db
    from thingbridge.models import App

    _platform()
    with db.connection_context():
        for app in App.select().order_by(App.created_at):
            state = f"disabled {app.disabled_at:%Y-%m-%dT%H:%M:%SZ}" if app.disabled_at \
                else "active"
            click.echo(f"{app.client_id}  {app.name}  {state}  {app.scopes}")


@apps.command("rotate-secret")
@click.argument("client_id")
@click.option("--revoke-tokens", is_flag=True,
              help="Also revoke every token issued with the old secret.")
def rotate_app_secret(client_id, revoke_tokens):
    """Give an app a new client secret (printed once); the old one stops working now."""
    from thingbridge.auth import credentials
    from thingbridge.db import db

    _platform()
    with db.connection_context():
        secret = credentials.rotate_secret(_find_app(client_id), revoke_tokens)
    click.echo(f"client_id={client_id}\nclient_secret={secret}")


@apps.command("disable")
@click.argument("client_id")
def disable_app(client_id):
    """Stop an app now: every token revoked, no new ones and no polls of its clients until
    enabled."""
    from thingbridge.auth import credentials
    from thingbridge.db import db

    _platform()
    with db.connection_context():
        revoked = credentials.disable(_find_app(client_id))
    click.echo(f"disabled {client_id}; revoked {revoked} tokens")


@apps.command("enable")
@click.argument("client_id")
def enable_app(client_id):
    """Let a disabled app get tokens again (with its current secret)."""
    from thingbridge.auth import credentials
    from thingbridge.db import db

    _platform()
    with db.connection_context():
        credentials.enable(_find_app(client_id))
    click.echo(f"enabled {client_id}")


@main.command("rotate-secrets")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(min=1),
              help="Rows re-encrypted per transaction.")
def rotate_secrets(batch):
    """Re-encrypt every stored secret with the first key of THINGBRIDGE_SECRET_KEYS (safe
    while the platform runs, once every process has the new key list)."""
    from thingbridge.secrets_rotation import rotate_all

    def progress(column):
        click.echo(f"{column.name}: {column.rotated} re-encrypted, {column.written_meanwhile} "
                   f"written meanwhile (kept), {len(column.unreadable)} unreadable")

    _platform()
    results = rotate_all(batch, progress)
    click.echo(f"re-encrypted {sum(c.rotated for c in results)} values")
    unreadable = [f"{c.name} id={key}" for c in results for key in c.unreadable]
    if unreadable:
        raise click.ClickException(
            f"{len(unreadable)} values no key of THINGBRIDGE_SECRET_KEYS decrypts were left as "
            "they are (restore the key they were written with and run again):\n  "
            + "\n  ".join(unreadable))


def _role_env(role: str, **settings) -> dict:
    """The environment of a process the CLI starts: its database connections named for its
    role (pg_stat_activity), plus ``settings`` the operator did not set themselves."""
    env = dict(os.environ)
    env.setdefault("THINGBRIDGE_DATABASE_APPLICATION_NAME", f"thingbridge-{role}")
    for name, value in settings.items():
        env.setdefault(f"THINGBRIDGE_{name}", str(value))
    return env


def _celery(command: str, args) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, command, "--loglevel=INFO", *args]


@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8080, type=int)
# Three: the third lets a connector action's first attempt run while the trigger waits
# (api/outside_calls.py), with a slot still kept for consents and checks and one for the rest.
@click.option("--workers", default=3, type=int, help="gunicorn worker processes")
@click.option("--threads", default=1, type=int, help="threads per worker process")
def api(host, port, workers, threads):
    """Serve the REST API (and the console, and /metrics) under gunicorn, which restarts a
    worker process that dies."""
    from thingbridge.api import outside_calls
    from thingbridge.gunicorn_workers import serve_command
    from thingbridge.observability.exposition import share_between_processes

    _warn_if_stored_secrets_unreadable(_check_settings())
    share_between_processes(f"api-{port}")  # /metrics sums every gunicorn process
    # A provider or name server that hangs holds all but one of the server's slots at most.
    outside_calls.share_between_processes(f"api-{port}", workers * threads - 1)
    if workers * threads == 1:
        click.echo("Warning: one request slot (--workers 1 --threads 1): a request that waits "
                   "on a provider holds the whole API meanwhile.", err=True)
    # One pooled database connection per thread: a request never waits for another's; a
    # statement stuck behind a lock held elsewhere ends well inside gunicorn's 30 s.
    env = _role_env("api", DATABASE_POOL_SIZE=threads, DATABASE_STATEMENT_TIMEOUT=10)
    os.execvpe(sys.executable, serve_command(workers, threads, f"{host}:{port}"), env)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--metrics-port", type=int, help="Serve this worker's Prometheus metrics here.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(metrics_port, metrics_host, celery_args):
    """Run a Celery worker (polls providers, delivers actions), restarted if it dies. Extra
    args go to celery."""
    _warn_if_stored_secrets_unreadable(_check_settings())
    if metrics_port:
        from thingbridge.observability import exposition

        exposition.share_between_processes(f"worker-{metrics_port}")
        os.environ.update({exposition.WORKER_PORT: str(metrics_port),
                           exposition.WORKER_HOST: metrics_host})
    sys.exit(supervise([Child("worker", _celery("worker", celery_args), _role_env("worker"))]))


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args):
    """Run the one beat process that schedules the dispatchers, restarted if it dies."""
    _check_settings()
    sys.exit(supervise([Child("beat", _celery("beat", celery_args), _role_env("beat"))]))


@main.command()
@click.option("--port", default=8080, type=int, help="API port")
def run(port):
    """Embedded default: SQLite, filesystem broker, API, worker, beat and simulators."""
    from thingbridge.embedded import run_embedded

    _check_settings()
    sys.exit(run_embedded(port))

