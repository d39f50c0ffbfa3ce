"""Fault injection on a production-mode platform (see stack.py): the dependencies are the
tests' own (a private PostgreSQL cluster, a private redis-server), so they can be cut."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import requests
from broker_helpers import redis_server
from flows import sim_stats
from private_postgres import PrivateCluster
from stack import Stack


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    setattr(item, f"rep_{call.when}", outcome.get_result())


@pytest.fixture(scope="module")
def cluster():
    cluster = PrivateCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def broker(tmp_path):
    folder = tmp_path / "redis"
    folder.mkdir()
    server = redis_server(folder).start()
    yield server
    server.kill()


@pytest.fixture
def stack(request, cluster, broker, owm_sim, tmp_path):
    # Every poll of every client answers a little late, so work is in flight when faults hit.
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "timeout", "timeout_seconds": 0.3,
                                                   "reading_bucket": 1}, timeout=5)
    if not cluster_running(cluster):
        cluster.start()
    stack = Stack(cluster, broker, owm_sim, tmp_path)
    yield stack
    stack.close()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(stack.logs())


def cluster_running(cluster) -> bool:
    try:
        cluster.execute("SELECT 1")
        return True
    except Exception:
        return False


def next_reading(owm_sim: str, bucket: int) -> None:
    """Every client's values change at its next poll (so polls write events)."""
    requests.post(f"{owm_sim}/_sim/control", json={"reading_bucket": bucket}, timeout=5)


def max_in_flight(owm_sim: str) -> int:
    return sim_stats(owm_sim)["max_in_flight_per_location"]


def assert_consistent(stack: Stack, client_ids: list[str]) -> dict:
    """The outbox and the webhook receiver after the dust settled: events numbered without a
    gap, none twice (every property's changes chain old -> new), every event delivered to the
    webhook once and in order per subject. Returns counts for the test's report."""
    events = stack.events()
    seqs = [seq for seq, *_ in events]
    assert seqs == list(range(1, len(seqs) + 1)), "event ids have a gap or a repeat"
    kinds = Counter(kind for _, kind, *_ in events)
    assert kinds["connector.client.created"] == len(client_ids)
    created = Counter(data["thingId"] for _, kind, _, data in events if kind == "thing.created")
    mapped = stack.rows("SELECT thing_id FROM thing_mapping WHERE client_id = ANY(%s)",
                        client_ids)
    assert len(mapped) == len(client_ids)  # one weather thing per client
    assert set(created.values()) == {1} and all(created[thing] for (thing,) in mapped)
    started = [data["client_id"] for _, kind, _, data in events
               if kind == "connector.client.status_changed" and data["status"] == "STARTED"]
    assert sorted(started) == sorted(client_ids)  # each client moved to STARTED exactly once
    chains = defaultdict(list)
    for _, kind, _, data in events:
        if kind == "thing.property_changed":
            chains[data["thingId"], data["componentId"], data["propertyId"]].append(data)
    for changes in chains.values():
        for before, after in zip(changes, changes[1:], strict=False):
            assert after["oldValue"] == before["newValue"] != after["newValue"], changes

    stack.wait_delivered()
    deliveries = stack.deliveries()
    first_seen = {}
    for webhook_id, envelope in deliveries:
        first_seen.setdefault(webhook_id, envelope)
    by_subject = defaultdict(list)
    for envelope in first_seen.values():
        by_subject[envelope["external_subject_id"]].append(envelope["id"])
    for subject, ids in by_subject.items():
        assert ids == sorted(ids), f"webhooks for {subject} out of order: {ids}"
    repeated = Counter(webhook_id for webhook_id, _ in deliveries) - Counter(first_seen.keys())
    assert not repeated, f"webhook deliveries repeated: {dict(repeated)}"
    return {"events": len(seqs), "deliveries": len(deliveries)}
