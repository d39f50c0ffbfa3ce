"""Event delivery benchmark: N outbox events -> real workers + beat -> a local webhook receiver,
then the same N to each message broker (RabbitMQ, Redis stream, Mosquitto) in turn. Baselines,
measured in the same run: the receiver's raw request rate (one process POSTing the same signed
envelopes with requests, keep-alive) and each broker's raw publish rate (one process, the same
publisher class and batch size, no database).

    .venv/bin/python bench/events.py --events 5000 --subjects 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import requests

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    free_port,
    platform,
    platform_env,
    scratch_database,
    start_workers,
    stop,
    tree_rss_mb,
)

RUN = uuid.uuid4().hex[:8]
BROKERS = {  # each run publishes to its own exchange / stream / topic prefix
    "rabbitmq": f"amqp://guest:guest@127.0.0.1:5672//?exchange=bench-{RUN}",
    "redis": f"redis://127.0.0.1:6379/13?stream=bench-{RUN}",
    "mosquitto": f"mqtt://127.0.0.1:1883?prefix=bench-{RUN}",
}


def start_receiver() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__),
                                                          "receiver.py"), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url, timeout=0.5)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("receiver did not start")


def received(url: str) -> int:
    return int(requests.get(url, timeout=5).text.split()[0])


def fill_outbox(app_id: str, count: int, subjects: int) -> None:
    from thingbridge.db import db
    from thingbridge.outbox import events

    batch = []
    for i in range(count):
        batch.append(events.Pending("thing.property_changed", f"subject-{i % subjects}", {
            "thingId": f"thing-{i % subjects}", "componentId": "temperature",
            "propertyId": "temperature", "oldValue": str(i), "newValue": str(i + 1)}))
        if len(batch) == 500 or i == count - 1:
            with db.atomic():
                events.emit_many(app_id, batch)
            batch = []


def envelopes(app_id: str, count: int) -> list[dict]:
    from thingbridge.models import Event
    from thingbridge.outbox.events import envelope

    return [envelope(e) for e in Event.select().where(Event.app == app_id)
            .order_by(Event.seq).limit(count)]


def raw_http_rate(url: str, items: list[dict]) -> float:
    from thingbridge.db import utcnow
    from thingbridge.outbox import webhook_signing

    secrets = [{"secret": webhook_signing.new_secret(), "expires_at": None}]
    session = requests.Session()
    start = time.perf_counter()
    for item in items:
        body = json.dumps(item, separators=(",", ":")).encode()
        headers = webhook_signing.headers(secrets, str(item["id"]), body, utcnow())
        session.post(url + "/hook", data=body, headers=headers, timeout=10).raise_for_status()
    return len(items) / (time.perf_counter() - start)


def raw_publish_rate(url: str, items: list[dict]) -> float:
    from thingbridge.outbox.publishers import build
    from thingbridge.outbox.publishing import BATCH

    publisher = build(url.replace(RUN, RUN + "-raw"))
    start = time.perf_counter()
    for i in range(0, len(items), BATCH):
        publisher.publish(items[i:i + BATCH])
    elapsed = time.perf_counter() - start
    publisher.close()
    return len(items) / elapsed


class BrokerCounter:
    """How many of this run's events a consumer of the broker has seen."""

    def __init__(self, kind: str):
        self.kind, self.seen = kind, 0
        if kind == "rabbitmq":
            import amqp
            self.conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
            self.conn.connect()
            self.channel = self.conn.channel()
            self.channel.exchange_declare(f"bench-{RUN}", "topic", durable=True,
                                          auto_delete=False)
            self.queue = self.channel.queue_declare(exclusive=True).queue
            self.channel.queue_bind(self.queue, f"bench-{RUN}", "#")
        elif kind == "mosquitto":
            import paho.mqtt.client as mqtt
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            lock = threading.Lock()

            def on_message(*_):
                with lock:
                    self.seen += 1

            self.client.on_message = on_message
            self.client.connect("127.0.0.1", 1883)
            self.client.subscribe(f"bench-{RUN}/#", qos=1)
            self.client.loop_start()
        else:
            import redis
            self.redis = redis.Redis.from_url("redis://127.0.0.1:6379/13")

    def count(self) -> int:
        if self.kind == "rabbitmq":
            return self.channel.queue_declare(self.queue, passive=True).message_count
        if self.kind == "redis":
            return self.redis.xlen(f"bench-{RUN}")
        return self.seen

    def close(self) -> None:
        if self.kind == "rabbitmq":
            self.conn.close()
        elif self.kind == "mosquitto":
            self.client.loop_stop()
            self.client.disconnect()
        else:
            self.redis.delete(f"bench-{RUN}", f"bench-{RUN}-raw")
            self.redis.close()


def run_phase(env: dict, args, done) -> tuple[float, float]:
    """Start workers and beat, wait until ``done()`` reaches N; (events/s after the first
    arrival, peak RSS MiB)."""
    workers = start_workers(env, args.workers, "threads", args.threads)
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "thingbridge_workers.celery_app:celery", "beat",
         "--loglevel=WARNING", "-s", os.path.join(env["THINGBRIDGE_VAR_DIR"], f"beat-{RUN}")],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The clock starts at the first arrival: worker boot and beat's first tick are startup
        # latency, not throughput.
        first, peak = None, 0.0
        while (count := done()) < args.events:
            if count and first is None:
                first = (time.perf_counter(), count)
            peak = max(peak, tree_rss_mb([w.pid for w in workers]))
            time.sleep(0.05)
        started, already = first or (time.perf_counter(), 0)
        return (args.events - already) / max(time.perf_counter() - started, 1e-3), peak
    finally:
        stop(workers + [beat])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--subjects", type=int, default=50, help="webhook ordering lanes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--brokers", default=",".join(BROKERS), help="or '' for webhooks only")
    args = parser.parse_args()
    recv_proc, recv_url = start_receiver()
    rows = []
    try:
        with scratch_database() as url:
            env = platform_env(url, THINGBRIDGE_EVENT_PUMP_INTERVAL="0.5",
                               THINGBRIDGE_OUTBOUND_ALLOW="127.0.0.0/8")
            os.makedirs(env["THINGBRIDGE_VAR_DIR"], exist_ok=True)
            with platform(env, connection=False):
                from thingbridge.models import App, WebhookDelivery, WebhookEndpoint
                from thingbridge.outbox import webhook_signing

                owner, _ = App.register("bench")
                fill_outbox(owner.id, args.events, args.subjects)
                items = envelopes(owner.id, args.events)

                raw = raw_http_rate(recv_url, items)
                before = received(recv_url)
                WebhookEndpoint.create(app=owner, url=recv_url + "/hook", event_types=["*"],
                                       secrets=[{"secret": webhook_signing.new_secret(),
                                                 "expires_at": None}], cursor=0)
                rate, rss = run_phase(env, args, lambda: received(recv_url) - before)
                extra = received(recv_url) - before - args.events
                rows.append(("webhook receiver", raw, rate, rss, f"duplicates {extra}"))
                WebhookEndpoint.delete().execute()
                assert WebhookDelivery.select().count() == 0

                for kind in filter(None, args.brokers.split(",")):
                    counter = BrokerCounter(kind)
                    try:
                        raw = raw_publish_rate(BROKERS[kind], items)
                        phase_env = {**env, "THINGBRIDGE_EVENT_BROKERS": BROKERS[kind]}
                        rate, rss = run_phase(phase_env, args, counter.count)
                        rows.append((kind, raw, rate, rss, f"seen {counter.count()}"))
                    finally:
                        counter.close()
    finally:
        stop([recv_proc])
    print(f"events={args.events} subjects={args.subjects} "
          f"workers={args.workers}x{args.threads} threads, beat pump every 0.5 s")
    print(f"{'target':>18} {'raw /s':>9} {'platform /s':>12} {'ratio':>6} {'RSS MiB':>8}")
    for name, raw, rate, rss, note in rows:
        print(f"{name:>18} {raw:>9.1f} {rate:>12.1f} {rate / raw:>6.2f} {rss:>8.0f}  {note}")


if __name__ == "__main__":
    main()
