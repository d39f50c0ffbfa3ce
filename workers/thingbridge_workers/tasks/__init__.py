"""Celery tasks, each registered under an explicit ``thingbridge.*`` name."""
