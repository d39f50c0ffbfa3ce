"""WSGI entry point for production servers: ``gunicorn thingbridge.wsgi:app``."""

from thingbridge import create_app

app = create_app()
