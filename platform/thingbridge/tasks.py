"""Celery bound to the Flask app (Flask's Celery pattern). The API only sends tasks by name."""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask, current_app

from thingbridge.config import var_dir
from thingbridge.observability import logs


def _broker_options(url: str, visibility_timeout: int) -> dict:
    if not url.startswith("filesystem://"):
        return {"visibility_timeout": visibility_timeout}
    folder = var_dir() / "broker"
    (folder / "queue").mkdir(parents=True, exist_ok=True)
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    return {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"), "store_processed": False}


def celery_init_app(app: Flask) -> Celery:
    from thingbridge.db import db

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            # One connection per worker process, reused across tasks; reopened if it dropped.
            logs.start_task(self.name, self.request.id,
                            self.request.get(logs.TASK_HEADER))
            with app.app_context():
                db.connect(reuse_if_open=True)
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=app.config["BROKER_URL"],
        broker_transport_options=_broker_options(app.config["BROKER_URL"],
                                                 app.config["BROKER_VISIBILITY_TIMEOUT"]),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        timezone="UTC",
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def enqueue(task_name: str, *args, countdown: float | None = None) -> None:
    current_app.extensions["celery"].send_task(task_name, args=args, countdown=countdown,
                                               headers=logs.task_headers())
