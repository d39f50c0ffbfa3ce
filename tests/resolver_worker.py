"""The worker app with a name resolver the tests control: names in the JSON file named by
TEST_RESOLVER_FILE resolve to the addresses listed there, read again on every lookup (so a
test can rebind a name between registration and sending)."""

import json
import os

from thingbridge.http import addresses
from thingbridge_workers.celery_app import celery

__all__ = ["celery"]


def _resolve(host: str, port: int) -> list[str]:
    with open(os.environ["TEST_RESOLVER_FILE"]) as table_file:
        table = json.load(table_file)
    return table[host] if host in table else addresses._getaddrinfo(host, port)


addresses.resolver = _resolve
