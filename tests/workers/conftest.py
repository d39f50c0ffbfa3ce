"""Fixtures shared by the worker tests."""

from __future__ import annotations

import pytest
from helpers import Receiver

from thingbridge.localserver import LocalServer


@pytest.fixture
def receiver():
    """An app's action callback on loopback that records what it is sent."""
    recv = Receiver()
    server = LocalServer(recv).start()
    recv.url = server.url + "/callback"
    yield recv
    server.stop()
