"""Outbound safety with real workers and real receivers on loopback: refused addresses at send
time (also after a name is rebound), one deadline per attempt, and one app's dead receivers
leaving the other apps' deliveries alone."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from helpers import LAMP, wait_until
from raw_receivers import answering

from thingbridge.http import addresses
from thingbridge.models import ActionRequest, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from thingbridge.outbox import events

HOOKS = "/api/v1/webhooks"
THINGS = "/api/v1/things"
CLOSED = {"THINGBRIDGE_OUTBOUND_ALLOW": ""}
# What an app may have registered while a name still resolved publicly, or an operator range
# was open: every send checks again.
SEND_TIME_FORMS = [
    "https://127.0.0.1:{port}/", "https://10.0.0.5/", "https://169.254.169.254/",
    "https://[::1]:{port}/", "https://[::ffff:127.0.0.1]:{port}/", "https://0.0.0.0:{port}/",
    "https://2130706433:{port}/", "https://0x7f000001:{port}/", "https://017700000001:{port}/",
    "https://127.1:{port}/", "https://localhost:{port}/", "http://127.0.0.1:{port}/",
]


def endpoint(app_id: str, url: str) -> WebhookEndpoint:
    """An endpoint as registration would store it (bypassing today's registration check)."""
    return WebhookEndpoint.create(app=app_id, url=url, event_types=["*"], description="",
                                  secrets=[{"secret": "whsec_test", "expires_at": None}],
                                  cursor=events.last_seq(app_id))


def errors_of(hook_id) -> list[str]:
    return [a.error for a in WebhookAttempt.select().join(WebhookDelivery).where(
        WebhookDelivery.endpoint == hook_id)]


def test_every_internal_form_is_refused_at_send_time(api, servers, start_worker):
    server = servers(answering(b"204 No Content"))
    hooks = [endpoint(api.model.id, form.format(port=server.port)) for form in SEND_TIME_FORMS]
    start_worker(beat=True, env=CLOSED)
    api.post(THINGS, json=LAMP)
    for hook in hooks:
        errors = wait_until(lambda hook=hook: errors_of(hook.id), message=hook.url)
        assert errors[0] == "unreachable: refused address" or \
            errors[0] == "unreachable: refused address (plain http)", (hook.url, errors)
    assert server.connections == 0
    attempt = WebhookAttempt.select().first()
    assert attempt.status_code is None and attempt.duration_ms == 0  # no timing either


def test_action_callbacks_to_refused_addresses_are_never_sent(api, servers, start_worker):
    server = servers(answering(b"204 No Content"))
    assert api.post("/api/v1/actions/callback/register",  # loopback is open in this process
                    json={"callbackUrl": f"http://127.0.0.1:{server.port}/cb"}).status_code == 200
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    start_worker(env=CLOSED)
    resp = api.post(f"{THINGS}/{thing_id}/components/switch/actions/setOn",
                    json={"on": "true"})
    assert resp.status_code == 201, resp.json

    def tried():
        request = ActionRequest.get_by_id(resp.json["id"])
        return request.attempts >= 1 and request

    request = wait_until(tried, message="a refused attempt")
    assert request.error == "callback unreachable: refused address"
    assert server.connections == 0


def test_a_name_rebound_to_loopback_after_registration_is_refused_at_send(
        api, servers, start_worker, monkeypatch, tmp_path, worker_env, flask_app):
    server = servers(answering(b"204 No Content"))
    monkeypatch.setattr(addresses, "resolver", lambda host, port: ["93.184.216.34"])
    monkeypatch.setitem(flask_app.config, "OUTBOUND_ALLOW", "")
    hook = api.post(HOOKS, json={"url": f"https://hooks.example:{server.port}/in"})
    assert hook.status_code == 201, hook.json  # public when registered
    table = tmp_path / "resolver.json"
    table.write_text(json.dumps({"hooks.example": ["127.0.0.1"]}))  # rebound since
    tests_dir = str(Path(__file__).parent.parent)
    start_worker(beat=True, app="resolver_worker:celery",
                 env={**CLOSED, "TEST_RESOLVER_FILE": str(table),
                      "PYTHONPATH": tests_dir + ":" + worker_env.get("PYTHONPATH", "")})
    api.post(THINGS, json=LAMP)
    errors = wait_until(lambda: errors_of(hook.json["id"]), message="an attempt")
    assert errors[0] == "unreachable: refused address" and server.connections == 0


def test_a_trickling_receiver_frees_the_worker_at_the_deadline(api, servers, start_worker):
    stop, cut = threading.Event(), threading.Event()

    def trickle(conn):
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 10_000:
            if stop.wait(0.2):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                cut.set()  # the sender hung up on us
                return

    slow, fast = servers(trickle), servers(answering(b"204 No Content"))
    slow_hook = endpoint(api.model.id, slow.url())
    fast_hook = endpoint(api.model.id, fast.url())
    # One worker thread: the fast receiver's delivery needs the one the trickle holds.
    start_worker(beat=True, concurrency=1, env={"THINGBRIDGE_WEBHOOK_TIMEOUT": "2"})
    api.post(THINGS, json=LAMP)
    try:
        errors = wait_until(lambda: errors_of(slow_hook.id), message="the trickle cut off")
        assert errors[0] == "unreachable: timeout"
        wait_until(cut.is_set, message="the connection closed by the sender")
        wait_until(lambda: fast.connections and WebhookDelivery.get(
            WebhookDelivery.endpoint == fast_hook.id).status == "DELIVERED",
            message="the other receiver served by the freed thread")
    finally:
        stop.set()


def test_an_apps_dead_receivers_leave_other_apps_deliveries_alone(make_app, servers,
                                                                  start_worker):
    hanging, release = [], threading.Event()

    def hang(conn):  # reads the request and never answers
        hanging.append(conn)
        conn.recv(65536)
        release.wait(60)

    dead, alive = servers(hang), servers(answering(b"204 No Content"))
    noisy, quiet = make_app("noisy"), make_app("quiet")
    for i in range(50):
        endpoint(noisy.model.id, f"{dead.url()}/{i}")
    quiet_hook = endpoint(quiet.model.id, alive.url())
    share = 2
    # A deadline far beyond the test: the quiet app must not wait for any of its attempts.
    start_worker(beat=True, concurrency=share + 1,
                 env={"THINGBRIDGE_WEBHOOK_TIMEOUT": "120", "THINGBRIDGE_WEBHOOK_LEASE": "180",
                      "THINGBRIDGE_WEBHOOK_APP_CONCURRENCY": str(share)})
    try:
        noisy.post(THINGS, json=LAMP)
        wait_until(lambda: dead.connections >= share, message="the noisy app's share busy")
        quiet.post(THINGS, json=LAMP)
        wait_until(lambda: WebhookDelivery.get_or_none(
            (WebhookDelivery.endpoint == quiet_hook.id)
            & (WebhookDelivery.status == "DELIVERED")), message="the quiet app's delivery")
        assert dead.connections == share  # the noisy app never held more than its share
        assert not WebhookAttempt.select().join(WebhookDelivery).join(WebhookEndpoint).where(
            WebhookEndpoint.app == noisy.model.id).exists()  # its attempts still hang
    finally:
        release.set()


def test_an_apps_dead_callback_leaves_other_apps_actions_alone(make_app, servers,
                                                               start_worker):
    release = threading.Event()

    def hang(conn):
        conn.recv(65536)
        release.wait(60)

    dead, alive = servers(hang), servers(answering(b"204 No Content"))
    noisy, quiet = make_app("noisy"), make_app("quiet")
    triggers = []
    for app, server in ((noisy, dead), (quiet, alive)):
        app.post("/api/v1/actions/callback/register",
                 json={"callbackUrl": f"http://127.0.0.1:{server.port}/cb"})
        thing_id = app.post(THINGS, json=LAMP).json["Id"]
        triggers.append(lambda app=app, thing_id=thing_id: app.post(
            f"{THINGS}/{thing_id}/components/switch/actions/setOn", json={"on": "true"}))
    share = 1
    start_worker(concurrency=share + 1,
                 env={"THINGBRIDGE_OUTBOUND_TIMEOUT": "120", "THINGBRIDGE_TASK_LEASE": "180",
                      "THINGBRIDGE_ACTION_APP_CONCURRENCY": str(share)})
    try:
        for _ in range(5):
            assert triggers[0]().status_code == 201
        wait_until(lambda: dead.connections >= share, message="the noisy app's share busy")
        request_id = triggers[1]().json["id"]
        wait_until(lambda: ActionRequest.get_by_id(request_id).status == "COMPLETED",
                   message="the quiet app's action")
        assert dead.connections == share
    finally:
        release.set()
