"""The ``thingbridge`` command: migrations, apps, and the API, worker and beat processes."""

from __future__ import annotations

import os
import sys

import click

from thingbridge import create_app
from thingbridge.models import ALL_SCOPES

CELERY_APP = "thingbridge_workers.celery_app:celery"


@click.group()
def main():
    """Thingbridge IoT connector platform. Configured by THINGBRIDGE_* environment variables."""


@main.command()
@click.option("--down", is_flag=True, help="Revert the most recent migration instead.")
def migrate(down):
    """Apply pending database migrations (or revert one with --down)."""
    from thingbridge import db
    from thingbridge.connectors import registry

    app = create_app()
    with db.db.connection_context():
        names = db.migrator().down() if down else db.migrate_up()
        if not down:
            registry.sync_descriptions(app)
    click.echo("\n".join(f"{'reverted' if down else 'applied'}: {n}" for n in names)
               or "nothing to do")


@main.command("create-app")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(ALL_SCOPES),
              help="Allowed scope (repeatable); default: all.")
def create_app_command(name, scopes):
    """Register an app and print its client id and secret (the secret is shown only once)."""
    from thingbridge.db import db
    from thingbridge.models import App

    create_app()
    with db.connection_context():
        app, secret = App.register(name, scopes or ALL_SCOPES)
    click.echo(f"client_id={app.client_id}\nclient_secret={secret}\nscopes={app.scopes}")


@main.command("rotate-secrets")
def rotate_secrets():
    """Re-encrypt every stored secret with the first key of THINGBRIDGE_SECRET_KEYS."""
    from thingbridge.secrets_rotation import rotate_all

    create_app()
    click.echo(f"re-encrypted {rotate_all()} values")


@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8080, type=int)
@click.option("--workers", default=2, type=int, help="gunicorn worker processes")
def api(host, port, workers):
    """Serve the REST API (and the console, and /metrics) under gunicorn."""
    from thingbridge.observability.exposition import share_between_processes

    share_between_processes(f"api-{port}")  # /metrics sums every gunicorn process
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-w", str(workers),
                               "-b", f"{host}:{port}", "thingbridge.wsgi:app"])


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--metrics-port", type=int, help="Serve this worker's Prometheus metrics here.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(metrics_port, metrics_host, celery_args):
    """Run a Celery worker (polls providers, delivers actions). Extra args go to celery."""
    if metrics_port:
        from thingbridge.observability import exposition

        exposition.share_between_processes(f"worker-{metrics_port}")
        os.environ.update({exposition.WORKER_PORT: str(metrics_port),
                           exposition.WORKER_HOST: metrics_host})
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker",
                               "--loglevel=INFO", *celery_args])


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args):
    """Run the one beat process that schedules the poll dispatcher."""
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", CELERY_APP, "beat",
                               "--loglevel=INFO", *celery_args])


@main.command()
@click.option("--port", default=8080, type=int, help="API port")
def run(port):
    """Embedded default: SQLite, filesystem broker, API, worker, beat and simulators."""
    from thingbridge.embedded import run_embedded

    sys.exit(run_embedded(port))

