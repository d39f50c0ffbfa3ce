"""Fair share between apps: every per-app limit answers 429 in the standard error body with
Retry-After, and leaves other apps (and other subjects) alone."""

from __future__ import annotations

import base64
import threading
import time

import psycopg
import pytest
from helpers import DATABASE_URL, LAMP, OWM_KEY, basic, wait_until

from thingbridge.db import utcnow
from thingbridge.limits import window
from thingbridge.models import ActionRequest

THINGS = "/api/v1/things"
HOOKS = "/api/v1/webhooks"
INSTANCES = "/api/v1/connectors/instances"


@pytest.fixture
def limits(flask_app, monkeypatch):
    def set_limit(name, value):
        monkeypatch.setitem(flask_app.config, name, value)
    return set_limit


def assert_429(resp, setting):
    assert resp.status_code == 429, resp.json
    assert resp.json["status"] == 429 and resp.json["error"] == "TOO_MANY_REQUESTS"
    assert f"THINGBRIDGE_{setting}" in resp.json["description"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60


def first_refusal(send, limit):
    """Send until refused; a minute that rolls over mid-way grants one more window at most."""
    answers = [send() for _ in range(2 * limit + 1)]
    refused = [resp for resp in answers if resp.status_code == 429]
    assert refused, [resp.status_code for resp in answers]
    return refused[0]


def within_a_minute(send):
    """``send()``'s answers from within one rate window (a run of a few requests started in
    a minute's last 5 s waits for the next one)."""
    now = utcnow()
    if now.second >= 55:
        time.sleep(60 - now.second - now.microsecond / 1e6)
    return send()


def test_token_requests_per_client_id(api, make_app, limits, http):
    limits("TOKEN_REQUESTS_PER_MINUTE", 2)
    auth = {"Authorization": basic(api.client_id, api.secret)}

    def ask(headers=auth):
        return http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                         headers=headers)

    assert_429(first_refusal(ask, 2), "TOKEN_REQUESTS_PER_MINUTE")
    other = make_app("other")  # its own client id, its own count
    assert ask({"Authorization": basic(other.client_id, other.secret)}).status_code == 200


def test_wrong_secrets_spend_a_count_of_their_own(api, make_app, limits, http):
    """Whoever knows a client id and sends wrong secrets under it spends the id's count of
    wrong secrets (429 past it), not the app's own: the app still gets its tokens. Before,
    one count held both, and 300 wrong guesses a minute kept the app from signing in."""
    limits("TOKEN_REQUESTS_PER_MINUTE", 2)

    def ask(secret):
        return http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": basic(api.client_id, secret)})

    assert_429(first_refusal(lambda: ask("wrong"), 2), "TOKEN_REQUESTS_PER_MINUTE")
    assert "wrong secrets for this client id" in ask("wrong").json["description"]
    assert ask(api.secret).status_code == 200  # the fixture's token took the other one
    assert_429(ask(api.secret), "TOKEN_REQUESTS_PER_MINUTE")


def test_console_sign_ins_spend_the_same_counts_per_client_id(api, make_app, limits, http):
    """The console's sign-in checks a secret as a token request does, and spends the same
    counts: past the wrong secrets' count the page says so (429, Retry-After), and the app's
    own sign-in still gets in."""
    import re

    limits("TOKEN_REQUESTS_PER_MINUTE", 2)

    def sign_in(secret="wrong", client_id=api.client_id):
        form = http.get("/console/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        return http.post("/console/login", data={"client_id": client_id,
                                                  "client_secret": secret, "csrf_token": token})

    # A client id no app can have is an unknown one: the same page, not an error.
    for odd in ("a\x00b", "x" * 65):
        assert sign_in(client_id=odd).status_code == 401
    answers = [sign_in() for _ in range(4)]
    assert answers[0].status_code == 401
    refused = next(resp for resp in answers if resp.status_code == 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    page = refused.get_data(as_text=True)
    assert "THINGBRIDGE_TOKEN_REQUESTS_PER_MINUTE" in page
    assert "Too many wrong secrets" in page  # a sentence of its own on the page
    assert_429(http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": basic(api.client_id, "wrong")}),
               "TOKEN_REQUESTS_PER_MINUTE")
    assert sign_in(api.secret).status_code == 302


def test_a_slow_hash_of_before_is_checked_within_the_wrong_secrets_count(api, limits, http,
                                                                         monkeypatch):
    """An app still on the slow hash of before (100 ms a check) spends the wrong secrets'
    count before each check: past it, no check runs (the CPU stays bounded) until the minute
    ends or the app gets a new secret."""
    from werkzeug.security import generate_password_hash

    from thingbridge.auth import secret_hash
    from thingbridge.models import App

    App.update(client_secret_hash=generate_password_hash(api.secret)).where(
        App.id == api.model.id).execute()
    limits("TOKEN_REQUESTS_PER_MINUTE", 2)
    checks = []
    check = secret_hash.matches
    monkeypatch.setattr(secret_hash, "matches", lambda *a: checks.append(1) or check(*a))

    def revoke(secret="wrong"):
        return http.post("/oauth2/revoke", data={"token": "x"},
                         headers={"Authorization": basic(api.client_id, secret)})

    def run():
        wrong = [revoke().status_code for _ in range(3)]
        checked = len(checks)
        right = revoke(api.secret)
        checked = len(checks) - checked
        unknown = [http.post("/oauth2/revoke", data={"token": "x"}, headers={
            "Authorization": basic("no-such-client", "wrong")}).status_code for _ in range(3)]
        return wrong, right, checked, unknown

    wrong, right, checked, unknown = within_a_minute(run)
    # One wrong secret costs one, as for an id no app has: the count tells no id from another.
    assert wrong == unknown == [401, 401, 429]
    assert_429(right, "TOKEN_REQUESTS_PER_MINUTE")
    assert checked == 0  # past the count, a slow check does not run, the owner's included


def test_every_client_id_checked_spends_its_count(api, make_app, limits, http):
    """The count is spent on the id whose secret is checked, read as authlib reads it: a
    percent-encoded HTTP Basic name (RFC 6749 2.3.1), a tab after the scheme, or a header that
    fails before the form's credentials are tried spend the same count as the plain id."""
    limits("TOKEN_REQUESTS_PER_MINUTE", 3)
    other = make_app("other")
    encoded = "%" + format(ord(api.client_id[0]), "02X") + api.client_id[1:]
    token = {"grant_type": "client_credentials"}

    def raw_basic(client_id, secret, separator=" "):
        pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return {"Authorization": f"Basic{separator}{pair}"}

    # The header's guess fails, the form's credentials are good: both ids are counted.
    both = http.post("/oauth2/token", headers=raw_basic(api.client_id, "wrong"),
                     data={**token, "client_id": other.client_id,
                           "client_secret": other.secret})
    assert both.status_code == 200, both.json
    assert http.post("/oauth2/token", headers=raw_basic(encoded, "wrong"),
                     data=token).status_code == 401
    assert http.post("/oauth2/token", headers=raw_basic(api.client_id, "wrong", "\t "),
                     data=token).status_code == 401
    # The header above, the encoded name's and the tab's: the wrong secrets' count is spent.
    for headers in (raw_basic(api.client_id, "wrong"), raw_basic(encoded, "wrong")):
        assert_429(http.post("/oauth2/token", headers=headers, data=token),
                   "TOKEN_REQUESTS_PER_MINUTE")
    # A name that decodes to text no id can hold is an unknown client, not an error.
    resp = http.post("/oauth2/token", headers=raw_basic("ab%00c", "x"), data=token)
    assert resp.status_code == 401 and resp.json["error"] == "invalid_client", resp.json
    resp = http.post("/oauth2/token", headers={"Authorization": basic("a\x00b", "x")},
                     data=token)
    assert resp.status_code == 401 and resp.json["error"] == "invalid_client", resp.json


def test_action_triggers_per_minute(api, make_app, limits):
    api.post("/api/v1/actions/callback/register", json={"callbackUrl": "https://example.com/a"})
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    limits("ACTION_TRIGGERS_PER_MINUTE", 2)

    def trigger():
        return api.post(f"{THINGS}/{thing_id}/components/switch/actions/setOn",
                        json={"on": "true"})

    assert_429(first_refusal(trigger, 2), "ACTION_TRIGGERS_PER_MINUTE")


def test_a_refused_trigger_counts_against_the_rate(api, limits, monkeypatch):
    """404, 400 and 424 triggers spend from the minute as accepted ones do; once it is spent,
    the next trigger is a 429 and records nothing."""
    now = utcnow()  # one minute throughout: a minute that rolled over would grant another
    monkeypatch.setattr(window, "utcnow", lambda: now)
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    actions = f"{THINGS}/{thing_id}/components/switch/actions"
    limits("ACTION_TRIGGERS_PER_MINUTE", 4)
    refused = [api.post(f"{actions}/{action}", json=body).status_code for action, body in (
        ("setOn", {"on": "true"}),  # no callback URL yet
        ("nothing", {}),
        ("setOn", {"bogus": "1"}))]
    assert refused == [424, 404, 400]
    api.post("/api/v1/actions/callback/register", json={"callbackUrl": "https://example.com/a"})
    assert api.post(f"{actions}/setOn", json={"on": "true"}).status_code == 201
    assert_429(api.post(f"{actions}/setOn", json={"on": "true"}), "ACTION_TRIGGERS_PER_MINUTE")
    assert_429(api.post(f"{actions}/nothing", json={}), "ACTION_TRIGGERS_PER_MINUTE")
    assert ActionRequest.select().count() == 1


def test_webhooks_per_app(api, make_app, limits):
    limits("WEBHOOKS_PER_APP", 2)
    for _ in range(2):
        assert api.post(HOOKS, json={"url": "https://example.com/h"}).status_code == 201
    assert_429(api.post(HOOKS, json={"url": "https://example.com/h"}), "WEBHOOKS_PER_APP")
    other = make_app("other")
    assert other.post(HOOKS, json={"url": "https://example.com/h"}).status_code == 201


def test_things_per_subject(api, limits):
    limits("THINGS_PER_SUBJECT", 2)
    for _ in range(2):
        assert api.post(THINGS, json=LAMP).status_code == 201
    assert_429(api.post(THINGS, json=LAMP), "THINGS_PER_SUBJECT")
    assert api.as_subject("bob").post(THINGS, json=LAMP).status_code == 201


def test_properties_and_actions_per_subject(api, limits):
    """A thing may hold 5,000 properties: without a bound on what a subject's things hold, one
    read of them (the contract's unpaged list) cost hundreds of MB and seconds."""
    limits("PROPERTIES_PER_SUBJECT", 7)  # LAMP holds two properties and an action
    for _ in range(2):
        assert api.post(THINGS, json=LAMP).status_code == 201
    assert_429(api.post(THINGS, json=LAMP), "PROPERTIES_PER_SUBJECT")
    switch = LAMP["components"][0]
    smaller = {**LAMP, "components": [{**switch, "properties": switch["properties"][:1],
                                       "actions": []}]}
    assert api.post(THINGS, json=smaller).status_code == 201  # 6 held + 1 fits in 7
    assert api.as_subject("bob").post(THINGS, json=LAMP).status_code == 201


def test_instance_checks_per_app(api, make_app, limits):
    """Each instance creation is a provider call with a key the app chose: a rejected one
    could be sent again without end."""
    limits("INSTANCE_CHECKS_PER_MINUTE", 2)
    bad = {"connector_type_id": "openweathermap", "configuration": {"app_key": "wrong"}}
    resp = first_refusal(lambda: api.post(INSTANCES, json=bad), 2)
    assert_429(resp, "INSTANCE_CHECKS_PER_MINUTE")
    good = {**bad, "configuration": {"app_key": OWM_KEY}}
    assert make_app("other").post(INSTANCES, json=good).status_code == 201


def test_replays_in_flight(api, limits):
    limits("REPLAYS_IN_FLIGHT", 1)
    first = api.post(HOOKS, json={"url": "https://example.com/a"}).json
    second = api.post(HOOKS, json={"url": "https://example.com/b"}).json
    api.post(THINGS, json=LAMP)  # an event to replay; no worker delivers it meanwhile
    assert api.post(f"{HOOKS}/{first['id']}/replay", json={"after": 0}).status_code == 202
    assert_429(api.post(f"{HOOKS}/{second['id']}/replay", json={"after": 0}),
               "REPLAYS_IN_FLIGHT")


def test_revoke_spends_from_the_token_counts_per_client_id(api, make_app, limits, http):
    """Revoking checks the client secret as a token request does: the same two counts."""
    limits("TOKEN_REQUESTS_PER_MINUTE", 2)

    def revoke(secret="wrong"):
        return http.post("/oauth2/revoke", data={"token": "x"},
                         headers={"Authorization": basic(api.client_id, secret)})

    assert_429(first_refusal(revoke, 2), "TOKEN_REQUESTS_PER_MINUTE")
    assert_429(http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": basic(api.client_id, "wrong")}),
               "TOKEN_REQUESTS_PER_MINUTE")
    assert revoke(api.secret).status_code == 200  # the fixture's token took the other one
    assert_429(revoke(api.secret), "TOKEN_REQUESTS_PER_MINUTE")
    other = make_app("other")
    assert http.post("/oauth2/revoke", data={"token": "x"}, headers={
        "Authorization": basic(other.client_id, other.secret)}).status_code == 200


@pytest.mark.parametrize("setting, path, body", [
    ("WEBHOOKS_PER_APP", HOOKS, {"url": "https://example.com/h"}),
    ("THINGS_PER_SUBJECT", THINGS, LAMP)])
def test_a_size_limit_holds_for_requests_racing(flask_app, api, limits, monkeypatch, setting,
                                                path, body):
    """A second request (a thread, its own connection) comes in while the first has counted
    and not yet created: it waits for the first to commit and counts what that created."""
    from thingbridge.limits import quotas

    limits(setting, 2)
    assert api.post(path, json=body).status_code == 201
    check, racer, answers = quotas.check_size, [], []
    second = api.__class__(flask_app.test_client(), api.token, api.subject)

    def between_count_and_create(*args):
        if not racer:
            racer.append(threading.Thread(
                target=lambda: answers.append(second.post(path, json=body))))
            racer[0].start()
            wait_until(lambda: answers or _waiting_on_a_lock(),
                       message="the second request to finish or wait")
        check(*args)

    monkeypatch.setattr(quotas, "check_size", between_count_and_create)
    first = api.post(path, json=body)
    racer[0].join()
    assert sorted([first.status_code, answers[0].status_code]) == [201, 429]
    assert_429(answers[0], setting)  # the first went first


def _waiting_on_a_lock() -> bool:
    with psycopg.connect(DATABASE_URL) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()").fetchone()[0] > 0


def test_replays_in_flight_hold_for_replays_racing_on_two_endpoints(flask_app, api, limits,
                                                                     monkeypatch):
    """Each replay locks its own endpoint: a replay on a second endpoint (a thread, its own
    connection) that comes in while the first has counted and not yet committed waits for
    it and counts it as in flight."""
    from thingbridge.limits import quotas

    limits("REPLAYS_IN_FLIGHT", 1)
    hooks = [api.post(HOOKS, json={"url": f"https://example.com/{n}"}).json["id"]
             for n in range(2)]
    api.post(THINGS, json=LAMP)  # an event to replay; no worker delivers it meanwhile
    check, racer, answers = quotas.check_size, [], []
    second = api.__class__(flask_app.test_client(), api.token, api.subject)

    def between_count_and_commit(*args):
        if not racer:
            racer.append(threading.Thread(target=lambda: answers.append(
                second.post(f"{HOOKS}/{hooks[1]}/replay", json={"after": 0}))))
            racer[0].start()
            wait_until(lambda: answers or _waiting_on_a_lock(),
                       message="the second replay to finish or wait")
        check(*args)

    monkeypatch.setattr(quotas, "check_size", between_count_and_commit)
    first = api.post(f"{HOOKS}/{hooks[0]}/replay", json={"after": 0})
    racer[0].join()
    assert first.status_code == 202, first.json
    assert_429(answers[0], "REPLAYS_IN_FLIGHT")


def test_replays_in_flight_hold_for_many_replays_at_once_over_http(live_api, make_app, limits):
    """Replays on every endpoint of an app sent at once over real HTTP, each its own
    server thread and database connection: no more are accepted than the limit."""
    import requests

    limits("REPLAYS_IN_FLIGHT", 2)
    api = make_app("racer")
    hooks = [api.post(HOOKS, json={"url": f"https://example.com/{n}"}).json["id"]
             for n in range(8)]
    api.post(THINGS, json=LAMP)  # an event to replay; no worker delivers it meanwhile
    start, answers = threading.Barrier(len(hooks)), []

    def replay(hook_id):
        start.wait()
        answers.append(requests.post(f"{live_api}{HOOKS}/{hook_id}/replay", json={"after": 0},
                                     headers={"Authorization": f"Bearer {api.token}"},
                                     timeout=30).status_code)

    racers = [threading.Thread(target=replay, args=(hook_id,)) for hook_id in hooks]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(answers) == [202, 202] + [429] * 6


def test_thing_and_property_writes_per_app(api, make_app, limits):
    """Each write is an event fanned out to every webhook of the app: writes have a rate."""
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    limits("WRITES_PER_MINUTE", 3)
    value = iter(range(100))

    def write():
        return api.put(f"{THINGS}/{thing_id}/components/switch/properties/on",
                       json={"value": str(next(value) % 2 == 0).lower()})

    assert_429(first_refusal(write, 3), "WRITES_PER_MINUTE")
    for refused in (api.post(THINGS, json=LAMP), api.delete(f"{THINGS}/{thing_id}"),
                    api.patch(f"{THINGS}/{thing_id}", json={"status": "AVAILABLE"})):
        assert_429(refused, "WRITES_PER_MINUTE")
    other = make_app("other")  # its own count
    assert other.post(THINGS, json=LAMP).status_code == 201
    assert api.get(f"{THINGS}/{thing_id}").status_code == 200  # reads are not writes
