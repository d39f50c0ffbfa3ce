"""Message-broker publishing tasks: the beat-driven dispatcher and the per-(broker, app) drain."""

from celery import shared_task
from celery.signals import worker_process_shutdown

from thingbridge.outbox import publishers, publishing


@shared_task(name="thingbridge.dispatch_publishing", ignore_result=True, autoretry_for=())
def dispatch_publishing() -> int:
    """Lease every (broker, app) with unpublished events and enqueue a publisher for each.
    Without EVENT_BROKERS this returns before touching the database."""
    return publishing.dispatch()


# Not acks_late: a lost task is recovered by its lease expiring, not by redelivery (which
# would run a second holder with a stale token).
@shared_task(name="thingbridge.publish_events", acks_late=False, ignore_result=True)
def publish_events(publisher: str, app_id: str, lease_token: str) -> int:
    """Publish one app's backlog to one broker, in order, for a bounded slice of time."""
    return publishing.drain(publisher, app_id, lease_token)


@worker_process_shutdown.connect
def _close_publishers(**_kwargs) -> None:
    # Say goodbye to brokers (MQTT DISCONNECT, AMQP close) rather than drop the sockets.
    publishers.close_all()
