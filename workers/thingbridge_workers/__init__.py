"""Celery workers: poll providers into things, route actions, deliver events."""
