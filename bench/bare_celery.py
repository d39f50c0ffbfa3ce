"""The baseline of bench/worker_memory.py: a bare Celery app with one no-op task, on the same
broker (THINGBRIDGE_BROKER_URL), run with the same worker options as the platform's worker."""

import os

from celery import Celery

celery = Celery("bare", broker=os.environ["THINGBRIDGE_BROKER_URL"])
celery.conf.update(task_ignore_result=True, task_acks_late=True, worker_prefetch_multiplier=4)


@celery.task(name="bare.noop")
def noop(i: int) -> int:
    return i
