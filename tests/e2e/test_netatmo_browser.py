"""The Netatmo consent flow in a real headless Chromium (Debian's binary, driven by Playwright):
POST client -> follow the 303 -> click Accept on the simulator -> land on origin_callback_uri ->
a real worker polls -> things appear through the API; and the same again to repair a revoked
grant in place (POST .../reauthorize), and a replayed callback that changes nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flows import repoll
from helpers import Receiver, basic, wait_until

from thingbridge.localserver import LocalServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def origin():
    recv = Receiver()
    recv.default = (200, {"ok": True})
    server = LocalServer(recv).start()
    recv.url = server.url + "/connected"
    yield recv
    server.stop()


def _token(base, app_api) -> dict:
    resp = requests.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": basic(app_api.client_id, app_api.secret)})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}",
            "X-External-Subject-Id": "alice"}


def _connect(base, headers, origin_url) -> str:
    instance = requests.post(f"{base}/api/v1/connectors/instances", headers=headers, json={
        "connector_type_id": "netatmo", "configuration": {
            "client_id": "thingbridge-demo", "client_secret": "demo-secret",
            "origin_callback_uri": origin_url}})
    assert instance.status_code == 201, instance.text
    created = requests.post(f"{base}/api/v1/connectors/clients", headers=headers,
                            json={"connector_type_id": "netatmo"}, allow_redirects=False)
    assert created.status_code == 303, created.text
    return created.headers["Location"]


def test_consent_in_browser_then_things_appear(live_api, origin, browser, make_app,
                                               start_worker):
    headers = _token(live_api, make_app("browser-app"))
    start_worker()
    consent_url = _connect(live_api, headers, origin.url)

    page = browser.new_page()
    page.goto(consent_url)
    page.click("#accept")
    page.wait_for_url(f"{origin.url}**")
    landed = parse_qs(urlsplit(page.url).query)
    assert landed["status"] == ["STARTING"] and "error" not in landed
    client_id = landed["client_id"][0]

    def started():
        body = requests.get(f"{live_api}/api/v1/connectors/clients/{client_id}",
                            headers=headers).json()
        return body if body["status"] == "STARTED" and body["mappings"] else None

    client = wait_until(started, timeout=60, message="first poll")
    things = requests.get(f"{live_api}/api/v1/things?expand=components",
                          headers=headers).json()
    assert {t["id"] for t in things} == {m["thing_id"] for m in client["mappings"]}
    names = " ".join(t["name"] for t in things)
    assert things and any(c["id"] == "thermostat" for t in things for c in t["components"]), names
    page.close()


def _consent_in_browser(browser, consent_url, origin_url, login) -> dict:
    page = browser.new_page()
    page.goto(consent_url)
    page.fill("#login", login)
    page.click("#accept")
    page.wait_for_url(f"{origin_url}**")
    landed = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    page.close()
    return landed


def test_reauthorize_in_browser_repairs_a_revoked_grant_in_place(live_api, origin, browser,
                                                                 make_app, start_worker,
                                                                 netatmo_sim):
    headers = _token(live_api, make_app("browser-app"))
    start_worker()
    landed = _consent_in_browser(browser, _connect(live_api, headers, origin.url), origin.url,
                                 "alice@example.com")
    url = f"{live_api}/api/v1/connectors/clients/{landed['client_id']}"

    def client_in(status):
        body = requests.get(url, headers=headers).json()
        return body if body["status"] == status and body["mappings"] else None

    before = wait_until(lambda: client_in("STARTED"), timeout=60, message="first poll")
    requests.post(f"{netatmo_sim}/_sim/revoke", timeout=5)
    repoll(landed["client_id"])
    broken = wait_until(lambda: client_in("ERROR"), message="revoked grant noticed")
    assert broken["status_reason"] == "reauthorization required"

    again = requests.post(f"{url}/reauthorize", headers=headers, allow_redirects=False)
    assert again.status_code == 303
    relanded = _consent_in_browser(browser, again.headers["Location"], origin.url,
                                   "alice@example.com")
    assert relanded == {"client_id": landed["client_id"], "status": "STARTING"}
    after = wait_until(lambda: client_in("STARTED"), timeout=60, message="STARTED again")
    assert after["mappings"] == before["mappings"]
    things = requests.get(f"{live_api}/api/v1/things?expand=components", headers=headers).json()
    assert {t["id"] for t in things} == {m["thing_id"] for m in before["mappings"]}


def test_going_back_to_a_used_callback_shows_a_page_and_changes_nothing(live_api, origin,
                                                                       browser, make_app):
    headers = _token(live_api, make_app("browser-app"))
    page = browser.new_page()
    visited = []
    page.on("request", lambda request: visited.append(request.url))
    page.goto(_connect(live_api, headers, origin.url))
    page.click("#accept")
    page.wait_for_url(f"{origin.url}**")
    landed = parse_qs(urlsplit(page.url).query)
    url = f"{live_api}/api/v1/connectors/clients/{landed['client_id'][0]}"
    before = requests.get(url, headers=headers).json()
    callback = next(u for u in visited if "/api/v1/connectors/oauth/callback" in u)
    # Opened again from the browser's history: a page of ours, no redirect anywhere.
    answer = page.goto(callback)
    assert answer.status == 400 and page.url == callback
    assert "already used" in page.content()
    after = requests.get(url, headers=headers).json()
    assert (after["status"], after["status_since"]) == (before["status"], before["status_since"])
    page.close()


def test_deny_in_browser_marks_the_client_error(live_api, origin, browser, make_app):
    headers = _token(live_api, make_app("browser-app"))
    consent_url = _connect(live_api, headers, origin.url)
    page = browser.new_page()
    page.goto(consent_url)
    page.click("#deny")
    page.wait_for_url(f"{origin.url}**")
    landed = parse_qs(urlsplit(page.url).query)
    assert landed["status"] == ["ERROR"] and landed["error"] == ["access_denied"]
    client = requests.get(f"{live_api}/api/v1/connectors/clients/{landed['client_id'][0]}",
                          headers=headers).json()
    assert client["status"] == "ERROR" and "access_denied" in client["status_reason"]
    page.close()
