"""Celery tasks, each registered under an explicit ``thingbridge.*`` name. Periodic tasks
(beat's) do not retry on a database outage (``autoretry_for=()``): their next run is the retry."""
