"""The Netatmo consent flow in a real headless Chromium (Debian's binary, driven by Playwright):
POST client -> follow the 303 -> click Accept on the simulator -> land on origin_callback_uri ->
a real worker polls -> things appear through the API."""

from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from helpers import Receiver, basic, wait_until

from thingbridge.localserver import LocalServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_api(flask_app, clean_db, monkeypatch):
    server = LocalServer(flask_app).start()
    # Where the browser reaches the API: the OAuth redirect URI is built from it.
    monkeypatch.setitem(flask_app.config, "PUBLIC_BASE_URL", server.url)
    yield server.url
    server.stop()


@pytest.fixture
def origin():
    recv = Receiver()
    recv.default = (200, {"ok": True})
    server = LocalServer(recv).start()
    recv.url = server.url + "/connected"
    yield recv
    server.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium"), "Debian's chromium is required (apt-get install chromium)"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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
