"""The worker's Celery app: the Flask app's Celery instance plus tasks and the beat schedule.

Run with ``thingbridge worker`` / ``thingbridge beat`` (or ``celery -A
thingbridge_workers.celery_app:celery worker``)."""

from celery.signals import after_setup_logger, after_setup_task_logger, worker_init

from thingbridge import create_app
from thingbridge.observability import exposition, logs

flask_app = create_app(serve_http=False)  # no API, OpenAPI or console in a worker
celery = flask_app.extensions["celery"]
celery.conf.update(
    include=["thingbridge_workers.tasks.polling", "thingbridge_workers.tasks.actions",
             "thingbridge_workers.tasks.webhooks", "thingbridge_workers.tasks.publishing",
             "thingbridge_workers.tasks.events", "thingbridge_workers.tasks.consent",
             "thingbridge_workers.tasks.tokens"],
    beat_schedule={
        "dispatch-due-polls": {
            "task": "thingbridge.dispatch_polls",
            "schedule": flask_app.config["DISPATCH_INTERVAL"],
        },
        "dispatch-due-actions": {
            "task": "thingbridge.dispatch_actions",
            "schedule": flask_app.config["DISPATCH_INTERVAL"],
        },
        "expire-overdue-actions": {"task": "thingbridge.expire_actions", "schedule": 10.0},
        "expire-unfinished-consents": {"task": "thingbridge.expire_consents", "schedule": 60.0},
        "prune-events": {"task": "thingbridge.prune_events", "schedule": 3600.0},
        "prune-poll-tallies": {"task": "thingbridge.prune_poll_tallies", "schedule": 3600.0},
        "prune-tokens": {"task": "thingbridge.prune_tokens", "schedule": 3600.0},
        "pump-webhooks": {
            "task": "thingbridge.pump_webhooks",
            "schedule": flask_app.config["EVENT_PUMP_INTERVAL"],
        },
        "dispatch-publishing": {
            "task": "thingbridge.dispatch_publishing",
            "schedule": flask_app.config["EVENT_PUMP_INTERVAL"],
        },
    },
)


@worker_init.connect
def _serve_metrics(**_kwargs) -> None:
    # Only with thingbridge worker --metrics-port.
    exposition.start_worker_server(flask_app.config["METRICS_TOKEN"])


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger, **_kwargs) -> None:
    logs.reformat(logger, flask_app.config["LOG_FORMAT"])  # Celery installs its own handlers
