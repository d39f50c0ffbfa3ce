"""Two processes find the same Netatmo access token expired at once. Refresh tokens rotate
(the provider invalidates the old one as it answers), so only one may refresh: the provider
sees one refresh and both processes go on with the new token."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import requests
from flows import client_row, consent, sim_stats
from helpers import wait_until

from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient

# One process: say it is ready, wait for the start file (a minute at most: a test that failed
# never sends it), then ask for a usable token and call the provider with it.
REFRESHER = textwrap.dedent("""
    import os, sys, time
    import requests
    from thingbridge import create_app
    from thingbridge.connectors import oauth
    from thingbridge.connectors.registry import build_connector
    from thingbridge.db import db
    from thingbridge.models import ConnectorClient

    client_id, start = sys.argv[1], sys.argv[2]
    app = create_app()
    with app.app_context(), db.connection_context():
        instance = ConnectorClient.get_by_id(client_id).instance.configuration
        connector = build_connector("netatmo")
        open(f"{start}.ready.{os.getpid()}", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(start):
            if time.monotonic() > deadline:
                sys.exit("never started")
            time.sleep(0.01)
        token = oauth.access_token(client_id, connector, instance)
        answer = requests.post(os.environ["THINGBRIDGE_NETATMO_BASE_URL"]
                               + "/api/getstationsdata",
                               headers={"Authorization": f"Bearer {token}"}, timeout=10)
        print(token, answer.status_code)
""")


def test_two_processes_refresh_once_and_both_use_the_new_token(
        api, netatmo_sim, worker_env, tmp_path):
    client_id = consent(api)["client_id"]
    before = client_row(client_id).tokens
    requests.post(f"{netatmo_sim}/_sim/expire_tokens", timeout=5).raise_for_status()
    ConnectorClient.update(token_expires_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    start = tmp_path / "start"
    procs = [subprocess.Popen([sys.executable, "-c", REFRESHER, client_id, str(start)],
                              env=worker_env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        # Both are connected and waiting before either may go.
        wait_until(lambda: all(os.path.exists(f"{start}.ready.{p.pid}") for p in procs),
                   message="both processes ready")
        start.touch()
        answers = [proc.communicate(timeout=60)[0].split() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in procs] == [0, 0], answers
    stored = client_row(client_id).tokens
    assert stored["access_token"] != before["access_token"]
    assert stored["refresh_token"] != before["refresh_token"]
    assert answers == [[stored["access_token"], "200"]] * 2
    assert sim_stats(netatmo_sim)["refreshes"] == 1

