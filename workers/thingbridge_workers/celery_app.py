"""The worker's Celery app: the Flask app's Celery instance plus tasks and the beat schedule.

Run with ``thingbridge worker`` / ``thingbridge beat`` (or ``celery -A
thingbridge_workers.celery_app:celery worker``)."""

from thingbridge import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
celery.conf.update(
    include=["thingbridge_workers.tasks.polling", "thingbridge_workers.tasks.actions",
             "thingbridge_workers.tasks.webhooks", "thingbridge_workers.tasks.publishing",
             "thingbridge_workers.tasks.events", "thingbridge_workers.tasks.tokens"],
    beat_schedule={
        "dispatch-due-polls": {
            "task": "thingbridge.dispatch_polls",
            "schedule": flask_app.config["DISPATCH_INTERVAL"],
        },
        "expire-overdue-actions": {"task": "thingbridge.expire_actions", "schedule": 10.0},
        "prune-events": {"task": "thingbridge.prune_events", "schedule": 3600.0},
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
