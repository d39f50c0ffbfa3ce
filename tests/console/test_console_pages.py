"""The console over real HTTP (a live_api app, a cookie-keeping client, real PostgreSQL):
sign-in, CSRF on every form, every page for an app with data, and another app's data
answering 404."""

from __future__ import annotations

import datetime
import re

import pytest
import requests
from flows import owm_client
from helpers import waiting_on
from werkzeug.security import generate_password_hash

from thingbridge.db import utcnow
from thingbridge.models import App, ConnectorClient, ConsoleSession


class Browser:
    """A cookie-keeping HTTP client of the live_api console that follows no redirects."""

    def __init__(self, base: str):
        self.base, self.session = base, requests.Session()

    def get(self, path):
        return self.session.get(self.base + path, allow_redirects=False, timeout=10)

    def post(self, path, data=None):
        return self.session.post(self.base + path, data=data, allow_redirects=False,
                                 timeout=10)

    def head(self, path, data=None):
        return self.session.head(self.base + path, data=data, allow_redirects=False,
                                 timeout=10)


def _csrf(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def _sign_in(http, api) -> None:
    form = http.get("/console/login")
    resp = http.post("/console/login", data={"client_id": api.client_id,
                                             "client_secret": api.secret,
                                             "csrf_token": _csrf(form)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/")


@pytest.fixture
def console(live_api, make_app):
    """A browser signed in as app-a, and app-a's Api."""
    api = make_app("app-a")
    http = Browser(live_api)
    _sign_in(http, api)
    return http, api


def test_pages_need_sign_in_and_keep_where_you_were_going(live_api):
    http = Browser(live_api)
    resp = http.get("/console/clients?status=ERROR")
    assert resp.status_code == 302
    assert "/console/login?next=/console/clients?status%3DERROR" in resp.headers["Location"]


def test_wrong_secret_unknown_id_and_missing_csrf_are_refused(live_api, make_app):
    api = make_app("app-a")
    http = Browser(live_api)
    token = _csrf(http.get("/console/login"))
    for client_id, secret in ((api.client_id, "wrong"), ("nobody", api.secret)):
        resp = http.post("/console/login", data={"client_id": client_id,
                                                 "client_secret": secret, "csrf_token": token})
        assert resp.status_code == 401 and "wrong secret" in resp.text
    resp = http.post("/console/login", data={"client_id": api.client_id,
                                             "client_secret": api.secret})
    assert resp.status_code == 400 and "CSRF" in resp.text
    assert http.get("/console/").status_code == 302  # still signed out


def test_next_never_leaves_the_console(live_api, make_app):
    api = make_app("app-a")
    http = Browser(live_api)
    for target in ("//evil.example/console/", "https://evil.example/", "/api/v1/things"):
        resp = http.post("/console/login", data={
            "client_id": api.client_id, "client_secret": api.secret, "next": target,
            "csrf_token": _csrf(http.get("/console/login"))})
        assert resp.headers["Location"].endswith("/console/"), target


def test_every_page_renders_with_data_and_security_headers(console, owm_sim):
    http, api = console
    client_id = owm_client(api)
    assert api.post("/api/v1/webhooks", json={"url": "http://localhost:9/hook"}
                    ).status_code == 201
    webhook_id = api.get("/api/v1/webhooks").json[0]["id"]
    pages = ["/console/", "/console/clients", "/console/clients?connector=openweathermap",
             f"/console/clients/{client_id}", f"/console/clients/{client_id}/delete",
             "/console/events", "/console/events?type=connector.client.*&subject=alice",
             "/console/webhooks", f"/console/webhooks/{webhook_id}",
             f"/console/webhooks/{webhook_id}?status=DEAD", "/console/actions"]
    for path in pages:
        resp = http.get(path)
        assert resp.status_code == 200, path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert "alice" in resp.text or "webhook" in path or path in (
            "/console/", "/console/actions"), path
    client_page = http.get(f"/console/clients/{client_id}").text
    assert "openweathermap" in client_page and "created" in client_page  # its history


def test_delivery_health_counts_the_endpoints_newest_deliveries(console, flask_app,
                                                               monkeypatch):
    """Counting every delivery kept took 350 ms a page at 2 million: the counts cover the
    newest ones, and say so once they reach the bound."""
    from thingbridge.models import Event, WebhookDelivery
    from thingbridge.outbox import webhook_endpoints

    http, api = console
    owm_client(api)  # an event to deliver
    hook = api.post("/api/v1/webhooks", json={"url": "http://localhost:9/hook"}).json["id"]
    event = Event.select().first()
    for status in ("DEAD", "DELIVERED", "DELIVERED", "PENDING"):  # oldest first
        WebhookDelivery.create(endpoint=hook, event=event, seq=event.seq, status=status)
    for path in ("/console/", "/console/webhooks"):
        page = http.get(path).text
        assert all(count in page for count in ("2 delivered", "1 pending", "1 dead")), path
        assert "of the newest" not in page
    monkeypatch.setattr(webhook_endpoints, "RECENT_DELIVERIES", 3)
    monkeypatch.setitem(flask_app.jinja_env.globals, "recent_deliveries", 3)
    for path in ("/console/", "/console/webhooks", f"/console/webhooks/{hook}"):
        page = http.get(path).text
        assert "of the newest 3" in page, path
    page = http.get("/console/webhooks").text
    assert all(count in page for count in ("2 delivered", "1 pending", "0 dead"))


def test_values_the_database_cannot_take_get_the_consoles_pages(console):
    """A NUL in a path is no page (404, as any path that names none), in a filter the
    console's 400 page (it was the API's JSON body), and a page past any offset the last one
    (it was a database error)."""
    http, _ = console
    for path in ("/console/clients/%00", "/console/webhooks/%00",
                 "/console/clients/%00/delete"):
        assert http.get(path).status_code == 404, path
    token = _csrf(http.get("/console/clients"))
    for path in ("/console/clients/%00/poll", "/console/clients/%00/reauthorize",
                 "/console/clients/%00/delete", "/console/webhooks/%00/replay",
                 "/console/webhooks/%00/deliveries/1/redeliver"):
        assert http.post(path, data={"csrf_token": token}).status_code == 404, path
    for path, code in (("/console/clients?subject=%00", 400),
                       ("/console/events?subject=%00", 400),
                       ("/console/clients?page=922337203685477580", 200)):
        resp = http.get(path)
        assert resp.status_code == code, (path, resp.status_code, resp.text[:200])
        assert resp.headers["Content-Type"].startswith("text/html"), path


def test_filters_refuse_unknown_values(console):
    http, _ = console
    for path in ("/console/clients?status=BROKEN", "/console/events?type=nope",
                 "/console/events?before=0", "/console/actions?status=x"):
        assert http.get(path).status_code == 400, path


def test_another_apps_resources_are_404(console, make_app, owm_sim):
    http, _ = console
    other = make_app("app-b")
    client_id = owm_client(other)
    assert other.post("/api/v1/webhooks", json={"url": "http://localhost:9/hook"}
                      ).status_code == 201
    webhook_id = other.get("/api/v1/webhooks").json[0]["id"]
    token = _csrf(http.get("/console/"))
    assert http.get(f"/console/clients/{client_id}").status_code == 404
    assert http.get(f"/console/webhooks/{webhook_id}").status_code == 404
    for path in (f"/console/clients/{client_id}/poll", f"/console/clients/{client_id}/delete",
                 f"/console/clients/{client_id}/reauthorize",
                 f"/console/webhooks/{webhook_id}/replay",
                 f"/console/webhooks/{webhook_id}/deliveries/1/redeliver"):
        assert http.post(path, data={"csrf_token": token, "after": "0"}).status_code == 404
    assert ConnectorClient.get_or_none(ConnectorClient.id == client_id) is not None
    assert "alice" not in http.get("/console/clients").text


def test_delete_needs_the_confirmation_form_and_its_token(console, owm_sim):
    http, api = console
    client_id = owm_client(api)
    assert http.post(f"/console/clients/{client_id}/delete").status_code == 400  # no token
    confirm = http.get(f"/console/clients/{client_id}/delete")
    resp = http.post(f"/console/clients/{client_id}/delete", data={"csrf_token": _csrf(confirm)})
    assert resp.status_code == 302
    assert ConnectorClient.get_or_none(ConnectorClient.id == client_id) is None
    events = api.get("/api/v1/events?after=0").json["events"]
    assert events[-1]["type"] == "connector.client.deleted"


def test_a_new_secret_signs_the_old_sessions_out(console, live_api, make_app):
    from thingbridge.auth import credentials

    http, api = console
    other = Browser(live_api)
    _sign_in(other, make_app("app-b"))
    assert http.get("/console/").status_code == 200
    credentials.rotate_secret(api.model)
    assert http.get("/console/").status_code == 302
    assert other.get("/console/").status_code == 200  # another app's sign-in goes on


def test_a_secret_stored_in_the_old_form_signs_in_and_stays_signed_in(live_api, make_app):
    """A sign-in replaces a hash stored in the slow form of before with the new one; the
    session it starts must not end because the stored hash changed."""
    api, http = make_app("app-a"), Browser(live_api)
    App.update(client_secret_hash=generate_password_hash(api.secret)).where(
        App.id == api.model.id).execute()
    _sign_in(http, api)
    assert App.get_by_id(api.model.id).client_secret_hash.startswith("sha256$")
    assert http.get("/console/").status_code == 200


def test_a_disabled_app_is_signed_out_and_cannot_sign_in_until_enabled(console):
    from thingbridge.auth import credentials

    http, api = console
    credentials.disable(api.model)
    assert http.get("/console/").status_code == 302
    resp = http.post("/console/login", data={"client_id": api.client_id,
                                             "client_secret": api.secret,
                                             "csrf_token": _csrf(http.get("/console/login"))})
    assert resp.status_code == 401
    credentials.enable(api.model)
    _sign_in(http, api)
    assert http.get("/console/").status_code == 200


def test_sign_out_ends_the_sign_in_for_every_copy_of_the_cookie(console, live_api):
    """The session is a row on the server: signing out deletes it, so a copy of the cookie
    (taken from a shared machine, a log, a proxy) is signed out too, not valid until it
    expires."""
    http, _ = console
    copy = Browser(live_api)
    copy.session.cookies.update(http.session.cookies)
    assert copy.get("/console/").status_code == 200
    resp = http.post("/console/logout", data={"csrf_token": _csrf(http.get("/console/"))})
    assert resp.status_code == 302
    assert http.get("/console/").status_code == 302
    assert copy.get("/console/").status_code == 302
    assert ConsoleSession.select().count() == 0


def test_a_sign_in_ends_at_its_lifetime_and_is_pruned(console):
    from thingbridge.auth import credentials

    http, _ = console
    [row] = ConsoleSession.select()
    assert row.expires_at - row.created_at == datetime.timedelta(hours=12)
    ConsoleSession.update(expires_at=utcnow()).execute()
    assert http.get("/console/").status_code == 302
    assert credentials.prune_tokens() == 1 and ConsoleSession.select().count() == 0


def test_a_sign_in_whose_next_holds_line_breaks_goes_to_the_overview(live_api, make_app):
    api, http = make_app("app-a"), Browser(live_api)
    resp = http.post("/console/login", data={
        "client_id": api.client_id, "client_secret": api.secret,
        "csrf_token": _csrf(http.get("/console/login")), "next": "/console/\r\nSet-Cookie: x=1"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/")


def test_head_on_a_form_changes_nothing(live_api, make_app):
    """Flask routes HEAD to a GET view, and CSRF protection exempts it: a view must not take
    it for its POST (it deleted the client, or signed in without a CSRF token)."""
    api, http = make_app("app-a"), Browser(live_api)
    client_id = owm_client(api)
    assert http.head("/console/login", data={"client_id": api.client_id,
                                             "client_secret": api.secret}).status_code == 200
    assert http.get("/console/").status_code == 302  # still signed out
    _sign_in(http, api)
    assert http.head(f"/console/clients/{client_id}/delete").status_code == 200
    assert ConnectorClient.get_or_none(ConnectorClient.id == client_id) is not None


def test_a_client_stopped_by_its_instance_says_what_repairs_it(console, netatmo_sim):
    """A provider that refused the app's own credentials stops every client of the instance:
    the page says the instance's configuration repairs it, and offers no reauthorization (a
    consent goes through the same refused credentials)."""
    from flows import consent

    from thingbridge.connectors import lifecycle
    from thingbridge.connectors.contract import InstanceRefused

    http, api = console
    client_id = consent(api)["client_id"]
    row = ConnectorClient.get_by_id(client_id)
    page = http.get(f"/console/clients/{client_id}")
    assert 'id="reauthorize"' in page.text
    lifecycle.record_error(row, InstanceRefused("the token endpoint refused the OAuth client "
                                                "(invalid_client)"))
    page = http.get(f"/console/clients/{client_id}")
    assert "not polled until the instance&#39;s configuration is fixed" in page.text
    assert 'id="reauthorize"' not in page.text
    polled = http.post(f"/console/clients/{client_id}/poll", data={"csrf_token": _csrf(page)})
    assert polled.status_code == 302
    assert "until the instance&#39;s configuration is fixed" in http.get(
        f"/console/clients/{client_id}").text


def test_a_console_url_no_page_has_is_answered_with_a_page(console, live_api):
    """A mistyped console URL, or a form's URL with the wrong method: the console's own error
    page (its headers too), not the API's JSON."""
    http, _ = console
    for resp, code in ((http.get("/console/no-such-page"), 404),
                       (Browser(live_api).get("/console/no/such/page"), 404),
                       (http.post("/console/clients"), 405)):
        assert resp.status_code == code
        assert resp.headers["Content-Type"].startswith("text/html")
        assert f"<h1>{code}</h1>" in resp.text
        assert resp.headers["X-Frame-Options"] == "DENY"
    assert "GET" in resp.headers["Allow"]
    api_miss = http.get("/api/v1/no-such-resource")
    assert api_miss.status_code == 404 and api_miss.json()["error"] == "NOT_FOUND"
    assert http.get("/consoles").json()["error"] == "NOT_FOUND"  # not under /console



def test_two_sign_ins_upgrading_an_old_form_hash_both_succeed(live_api, make_app):
    """Two sign-ins at once with a secret stored in the old form: the one whose upgrade finds
    the hash already upgraded still signs in (it holds the same new hash)."""
    api = make_app("app-a")
    App.update(client_secret_hash=generate_password_hash(api.secret)).where(
        App.id == api.model.id).execute()
    first, second = App.get_by_id(api.model.id), App.get_by_id(api.model.id)
    assert first.check_client_secret(api.secret) and second.check_client_secret(api.secret)
    assert second.client_secret_hash == App.get_by_id(api.model.id).client_secret_hash

def test_signing_in_again_ends_the_sign_in_this_browser_had(console, live_api):
    http, api = console
    copy = Browser(live_api)
    copy.session.cookies.update(http.session.cookies)
    _sign_in(http, api)
    assert http.get("/console/").status_code == 200
    assert copy.get("/console/").status_code == 302
    assert ConsoleSession.select().count() == 1


@pytest.mark.parametrize("token", ["\ud800", 5, ["x"], {"a": 1}, "x" * 100_000, "a\x00b"],
                         ids=["lone-surrogate", "int", "list", "dict", "huge", "nul"])
def test_a_cookie_naming_no_sign_in_is_signed_out(live_api, flask_app, token):
    """A cookie only a holder of the secret keys can sign, with a token no sign-in has: the
    sign-in page, never a 500."""
    forged = flask_app.session_interface.get_signing_serializer(flask_app).dumps(
        {"token": token})
    http = Browser(live_api)
    http.session.cookies.set("thingbridge_console", forged, path="/console")
    resp = http.get("/console/")
    assert resp.status_code == 302 and "/console/login" in resp.headers["Location"]


def test_a_sign_in_racing_a_new_secret_does_not_outlive_it(live_api, make_app, flask_app):
    """The secret is rotated after the sign-in checked it, before the sign-in is stored: the
    sign-in waits for the rotation and fails, rather than start a session the rotation (which
    ends the sessions it finds) never saw."""
    api, http = make_app("app-a"), Browser(live_api)
    form = {"client_id": api.client_id, "client_secret": api.secret,
            "csrf_token": _csrf(http.get("/console/login"))}
    with waiting_on(flask_app, "UPDATE app SET client_secret_hash = %s WHERE id = %s",
                    ("sha256$rotated", api.model.id), lambda: http.post("/console/login", form),
                    "INSERT") as (_, answers):
        pass
    assert answers[0].status_code == 401
    assert ConsoleSession.select().count() == 0


def test_a_page_with_the_database_gone_says_when_to_try_again(second_app):
    """The database is unreachable: the console's 503 page, with the API's Retry-After."""
    from helpers import PUBLIC_BASE_URL, SECRET_KEY

    down = second_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test",
                       "SECRET_KEYS": SECRET_KEY, "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                       "DATABASE_CONNECT_TIMEOUT": 1})
    signed = down.session_interface.get_signing_serializer(down).dumps({"token": "t" * 43})
    client = down.test_client()
    client.set_cookie("thingbridge_console", signed, path="/console")
    resp = client.get("/console/")
    assert resp.status_code == 503 and resp.content_type.startswith("text/html")
    assert resp.headers["Retry-After"] and resp.headers["X-Frame-Options"] == "DENY"
