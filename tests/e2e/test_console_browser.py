"""The developer console in a real headless Chromium (Debian's, driven by Playwright) against
real workers: sign in, see a Netatmo client created through the API with its things, break it
at the provider and watch it turn red with its reason, redeliver a dead webhook delivery,
reauthorize it in place through the consent link the console hands out, sign out; another app
sees none of it. Every page is photographed at 1280x800 and at 390 px wide
(artifacts under the test's tmp dir; THINGBRIDGE_CONSOLE_SCREENSHOTS=<dir> copies them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests
from flows import wait_status
from helpers import OWM_KEY, Receiver, wait_until

from thingbridge.localserver import serving
from thingbridge.models import ActionRequest, Thing

pytestmark = pytest.mark.e2e
RED = "rgb(197, 48, 48)"  # the stylesheet's --bad
PHONE = {"width": 390, "height": 844}


class Shots:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        self.copy_to = os.environ.get("THINGBRIDGE_CONSOLE_SCREENSHOTS")

    def take(self, page, name: str) -> None:
        path = self.folder / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        if self.copy_to:
            shutil.copy(path, Path(self.copy_to) / path.name)


def sign_in(page, base: str, api) -> None:
    page.goto(f"{base}/console/")
    page.fill("#client_id", api.client_id)
    page.fill("#client_secret", api.secret)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/console/")


def accept_consent(context, link: str, origin: str) -> None:
    """The end user accepts on the provider's page, as the same Netatmo account each time, and
    lands on the app's page ``origin``."""
    user = context.new_page()
    user.goto(link)
    user.fill("input[name=login]", "alice@example.com")
    user.click("#accept")
    user.wait_for_url(f"{origin}/connected**")
    user.close()


def reload_until(page, predicate, message: str):
    def check():
        page.reload()
        return predicate()

    return wait_until(check, timeout=60, interval=0.5, message=message)


def test_console_in_a_browser(live_api, browser, make_app, start_worker, netatmo_sim, owm_sim,
                              tmp_path):
    shots = Shots(tmp_path / "console-screenshots")
    api, other = make_app("Acme Weather"), make_app("Other app")
    receiver = Receiver()
    receiver.default = (400, {"error": "not today"})  # dead-letters at once
    app_page = Receiver()  # where the end user's browser lands after the provider
    app_page.default = (200, {"connected": True})
    with serving(receiver) as hooks, serving(app_page) as origin:
        start_worker(beat=True)
        assert api.post("/api/v1/webhooks", json={
            "url": f"{hooks.url}/events", "event_types": ["connector.client.*"],
            "description": "Acme backend"}).status_code == 201
        assert api.post("/api/v1/connectors/instances", json={
            "connector_type_id": "netatmo", "configuration": {
                "client_id": "thingbridge-demo", "client_secret": "demo-secret",
                "origin_callback_uri": f"{origin.url}/connected"}}).status_code == 201
        # Over real HTTP, so the provider sends the browser back to this server.
        created = requests.post(f"{live_api}/api/v1/connectors/clients",
                                json={"connector_type_id": "netatmo"}, allow_redirects=False,
                                headers=api.headers(), timeout=10)
        assert created.status_code == 303, created.text
        client_id = created.json()["client_id"]
        desktop = browser.new_context(viewport={"width": 1280, "height": 800})
        accept_consent(desktop, created.headers["Location"], origin.url)
        assert api.post("/api/v1/connectors/instances", json={
            "connector_type_id": "openweathermap",
            "configuration": {"app_key": OWM_KEY}}).status_code == 201
        api.as_subject("bob").post("/api/v1/connectors/clients", json={
            "connector_type_id": "openweathermap", "configuration": {"city": "Lisbon"}})
        wait_status(client_id, "STARTED", timeout=60)
        thing_ids = [t.id for t in Thing.select().where(Thing.connector_client == client_id)]
        room = Thing.get(Thing.display_type == "THERMOSTAT")
        action = api.post(f"/api/v1/things/{room.id}/components/thermostat/actions/"
                          "setRoomThermPoint", json={"mode": "manual", "temp": "21.5"})
        wait_until(lambda: ActionRequest.get_by_id(action.json["id"]).status != "PENDING",
                   timeout=60, message="the action done")

        page = desktop.new_page()
        sign_in(page, live_api, api)
        assert page.locator(".appname").inner_text() == "Acme Weather"

        # The client, created through the API, with its things.
        page.click("nav >> text=Clients")
        row = page.locator(f'tr[data-client="{client_id}"]')
        assert "STARTED" in row.inner_text() and "netatmo" in row.inner_text()
        shots.take(page, "clients")
        row.locator("a").first.click()
        page.wait_for_url(f"**/console/clients/{client_id}")
        assert page.locator("#things .thing").count() >= 2
        assert room.name in page.locator("#things").inner_text()
        assert page.locator("#client-status .badge").inner_text() == "STARTED"

        # Broken at the provider, polled from the console: red, with its reason.
        requests.post(f"{netatmo_sim}/_sim/revoke", timeout=5)
        page.click("#poll-now")
        said = page.locator("[role=status]").inner_text()
        # A poll already on its way (the action's refresh, a second later) may meet the
        # revoked grant first: then the page says the client is in ERROR.
        assert "Poll queued" in said or "A client in ERROR is not polled" in said, said
        badge = page.locator("#client-status .badge")
        reload_until(page, lambda: badge.inner_text() == "ERROR", "the client in ERROR")
        assert badge.evaluate("e => getComputedStyle(e).color") == RED
        assert page.locator("#client-reason").inner_text() == "reauthorization required"
        assert "reauthorization required" in page.locator("#history").inner_text()
        assert page.locator("#poll-now").is_disabled()
        shots.take(page, "client")

        # A dead webhook delivery, sent again once the receiver is fixed.
        page.click("nav >> text=Webhooks")
        shots.take(page, "webhooks")
        page.click("text=Acme backend >> xpath=.. >> a.url")
        dead = page.locator('tr[data-status="DEAD"]')
        reload_until(page, lambda: dead.count() > 0, "a dead delivery")
        receiver.default = (204, None)
        dead.first.locator('button[name="redeliver"]').click()
        assert "queued again" in page.locator("[role=status]").inner_text()
        delivered = page.locator('tr[data-status="DELIVERED"]')
        reload_until(page, lambda: delivered.count() == 1, "the redelivery delivered")
        assert receiver.answered(204)
        shots.take(page, "webhook")
        webhook_page = page.url

        page.click("nav >> text=Overview")
        assert "reauthorization required" in page.locator(".problems").inner_text()
        # The worker writes its poll counts a few seconds after the polls.
        reload_until(page, lambda: "1 failed" in page.locator("#poll-totals").inner_text(),
                     "the failed poll in the last hour")
        shots.take(page, "overview")

        # Reauthorized in place: the console hands out a consent link for the end user.
        page.goto(f"{live_api}/console/clients/{client_id}")
        page.click("#reauthorize")
        link = page.locator("#consent-link").input_value()
        shots.take(page, "reauthorize")
        accept_consent(desktop, link, origin.url)
        page.goto(f"{live_api}/console/clients/{client_id}")
        reload_until(page, lambda: badge.inner_text() == "STARTED", "the client STARTED again")
        kept = [t.id for t in Thing.select().where(Thing.connector_client == client_id)]
        assert sorted(kept) == sorted(thing_ids)  # same client, same things
        assert page.locator("#things .thing").count() == len(thing_ids)

        page.click("nav >> text=Events")
        assert "connector.client.status_changed" in page.locator("#feed").inner_text()
        shots.take(page, "events")
        page.click("nav >> text=Actions")
        assert "COMPLETED" in page.locator("#action-list").inner_text()
        shots.take(page, "actions")

        phone = browser.new_context(viewport=PHONE, storage_state=desktop.storage_state(),
                                    is_mobile=True, has_touch=True)
        small = phone.new_page()
        for name, url in (("overview", f"{live_api}/console/"),
                          ("clients", f"{live_api}/console/clients"),
                          ("client", f"{live_api}/console/clients/{client_id}"),
                          ("webhook", webhook_page), ("events", f"{live_api}/console/events"),
                          ("actions", f"{live_api}/console/actions")):
            small.goto(url)
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} scrolls sideways on a phone ({width} px)"
            shots.take(small, f"{name}-phone")
        phone.close()

        page.click("#logout")
        page.wait_for_url("**/console/login")
        assert page.goto(f"{live_api}/console/clients").url.startswith(
            f"{live_api}/console/login")

        # Another app signs in and finds none of it.
        sign_in(page, live_api, other)
        page.goto(f"{live_api}/console/clients")
        assert "No clients match." in page.inner_text("main")
        assert page.goto(f"{live_api}/console/clients/{client_id}").status == 404
        page.goto(f"{live_api}/console/webhooks")
        assert "No endpoints" in page.inner_text("main")
        page.goto(f"{live_api}/console/events")
        assert "alice" not in page.inner_text("main")
        desktop.close()
