"""Fixtures shared by the worker tests."""

from __future__ import annotations

import pytest
from flows import consent, poll_due
from helpers import Receiver

from thingbridge.localserver import LocalServer
from thingbridge.models import Thing


@pytest.fixture
def receiver():
    """An app's action callback on loopback that records what it is sent."""
    recv = Receiver()
    server = LocalServer(recv).start()
    recv.url = server.url + "/callback"
    yield recv
    server.stop()


@pytest.fixture
def api_attempts(flask_app, monkeypatch):
    """The outside-call slots `thingbridge api` gives its 3 workers, so the API makes a
    connector action's first attempt itself (with none set, as under a plain gunicorn, it
    makes none)."""
    monkeypatch.setitem(flask_app.config, "API_OUTSIDE_CALLS", 2)


@pytest.fixture
def room(api, netatmo_sim):
    """A Netatmo room, mapped by a poll in this process: no worker runs until a test starts
    one, so whatever the provider sees before was the API's doing."""
    assert poll_due(consent(api)["client_id"]) == "ok"
    return Thing.get(Thing.display_type == "THERMOSTAT")
