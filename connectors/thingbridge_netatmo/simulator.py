"""A simulator of the Netatmo API: OAuth consent page, token endpoint with rotating refresh
tokens, getstationsdata / homesdata / homestatus / setroomthermpoint, and error modes.

Test control over HTTP (workers calling it run in other processes): ``POST /_sim/control``
{"mode": ok|error_500|timeout|usage_limit_403|usage_limit_429, "timeout_seconds",
"reading_bucket": int|null (pins the 10-minute bucket readings come from; null follows the
clock), "unreachable": ["outdoor", "wind", "rain", "indoor"] (station modules out of reach,
answered as Netatmo does: ``reachable`` false, no ``dashboard_data``), "lose_refresh_answers":
bool (a refresh rotates the token, then answers only after ``timeout_seconds``),
"retry_after": seconds|null (the usage limits' ``Retry-After``)},
``POST /_sim/revoke`` [{"login"}] (every grant, or that account's), ``POST /_sim/expire_tokens``,
``POST /_sim/clients`` {client_id, client_secret}, ``POST /_sim/grant`` {client_id} (a
consented user without a browser), ``GET /_sim/stats`` (``token``: every token call),
``POST /_sim/reset``.
The consent page's optional ``login`` field names the account: the same login is the same
user (same devices) on every consent, an empty one a new user. PKCE (RFC 7636): a
``code_challenge`` sent to the authorize page binds the code to its ``code_verifier``.
Standalone: ``python -m thingbridge_netatmo.simulator --port 8092``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections import Counter
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from thingbridge.localserver import simulator_main
from thingbridge_netatmo import simulator_data as data

DEMO_CLIENTS = {"thingbridge-demo": "demo-secret"}
CONSENT_FIELDS = ("client_id", "redirect_uri", "state", "scope", "code_challenge",
                  "code_challenge_method")
PKCE_METHODS = ("S256", "plain")
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
BUCKET_SECONDS = 600
ERRORS = {2: "Invalid access token", 3: "Access token expired", 26: "User usage reached"}


MODULES = {"outdoor", "wind", "rain", "indoor"}


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _api_error(code: int, status: int = 403) -> Response:
    return _json({"error": {"code": code, "message": ERRORS[code]}}, status)


class NetatmoSimulator:
    def __init__(self, clients: dict | None = None, access_token_ttl: int = 10800,
                 clock=time.time):
        self.initial_clients = dict(clients or DEMO_CLIENTS)
        self.access_token_ttl = access_token_ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.clients = dict(self.initial_clients)
            self.mode, self.timeout_seconds = "ok", 5.0
            self.reading_bucket: int | None = None
            self.unreachable: list[str] = []
            self.lose_refresh_answers = False
            self.retry_after: int | None = None
            self.users = 0
            self.logins: dict[str, int] = {}        # login -> user
            # code -> (user, client_id, redirect_uri, code_challenge, code_challenge_method)
            self.codes: dict[str, tuple] = {}
            self.access: dict[str, tuple] = {}      # token -> (user, expires_at)
            self.refresh: dict[str, tuple] = {}     # token -> (user, client_id)
            self.setpoints: dict[int, dict] = {}    # user -> room_id -> (mode, temp, end)
            self.stats = Counter()
            self.actions: list[dict] = []

    def __call__(self, environ, start_response):
        request = Request(environ)
        routes = {"/oauth2/authorize": self.authorize, "/oauth2/token": self.token,
                  "/api/getstationsdata": self.api, "/api/homesdata": self.api,
                  "/api/homestatus": self.api, "/api/setroomthermpoint": self.api}
        handler = routes.get(request.path)
        if request.path.startswith("/_sim/"):
            handler = self.control
        response = handler(request) if handler else _json({"error": "not found"}, 404)
        return response(environ, start_response)

    # --- OAuth ----------------------------------------------------------------------------
    def _new_user(self) -> int:
        self.users += 1
        return self.users

    def _user(self, login: str) -> int:
        if not login:
            return self._new_user()
        if login not in self.logins:
            self.logins[login] = self._new_user()
        return self.logins[login]

    def _issue(self, user: int, client_id: str) -> dict:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.access[access] = (user, self.clock() + self.access_token_ttl)
        self.refresh[refresh] = (user, client_id)
        scope = ["read_station", "read_thermostat", "write_thermostat"]
        return {"access_token": access, "refresh_token": refresh, "scope": scope,
                "expires_in": self.access_token_ttl, "expire_in": self.access_token_ttl}

    def authorize(self, request: Request) -> Response:
        args = request.form if request.method == "POST" else request.args
        client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
        state = args.get("state", "")
        if client_id not in self.clients or not redirect_uri:
            return Response("<h1>invalid client_id or redirect_uri</h1>", 400,
                            content_type="text/html")
        sep = "&" if "?" in redirect_uri else "?"

        def back(**params) -> Response:
            return Response(status=302, headers={"Location": redirect_uri + sep + urlencode(
                {**params, "state": state})})

        challenge = args.get("code_challenge", "")
        method = args.get("code_challenge_method", "plain") if challenge else ""
        if challenge and method not in PKCE_METHODS:
            return back(error="invalid_request",
                        error_description="transform algorithm not supported")
        if request.method == "GET":
            hidden = "\n".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                               for k in CONSENT_FIELDS if (v := args.get(k, "")))
            page = data.CONSENT_PAGE.format(client_id=html.escape(client_id),
                                            scope=html.escape(args.get("scope", "")),
                                            hidden=hidden)
            return Response(page, content_type="text/html")
        if request.form.get("decision") != "accept":
            return back(error="access_denied")
        code = secrets.token_hex(12)
        with self.lock:
            self.codes[code] = (self._user(request.form.get("login", "").strip()), client_id,
                                redirect_uri, challenge, method)
        return back(code=code)

    def token(self, request: Request) -> Response:
        form = request.form
        client_id = form.get("client_id", "")
        with self.lock:
            self.stats["token"] += 1  # every call, answered or refused
        if self.clients.get(client_id) != form.get("client_secret") or not client_id:
            return _json({"error": "invalid_client"}, 400)
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                grant = self.codes.pop(form.get("code", ""), None)  # single use
                if grant is None or grant[1] != client_id or grant[2] != form.get(
                        "redirect_uri"):
                    return _json({"error": "invalid_grant"}, 400)
                user, _, _, challenge, method = grant
                if challenge and not _verifier_matches(form.get("code_verifier", ""),
                                                       challenge, method):
                    return _json({"error": "invalid_grant",
                                  "error_description": "code_verifier does not match"}, 400)
                self.stats["pkce_verified"] += bool(challenge)
                return _json(self._issue(user, client_id))
            if form.get("grant_type") != "refresh_token":
                return _json({"error": "unsupported_grant_type"}, 400)
            # Rotation: the old refresh token dies as the new pair is issued.
            grant = self.refresh.pop(form.get("refresh_token", ""), None)
            if grant is None or grant[1] != client_id:
                return _json({"error": "invalid_grant"}, 400)
            self.stats["refreshes"] += 1
            issued, lose = self._issue(grant[0], client_id), self.lose_refresh_answers
        if lose:  # rotated, but the answer comes after the caller stopped waiting for it
            time.sleep(self.timeout_seconds)
        return _json(issued)

    # --- API ------------------------------------------------------------------------------
    def api(self, request: Request) -> Response:
        endpoint = request.path.rsplit("/", 1)[1]
        with self.lock:
            self.stats[endpoint] += 1
            mode = self.mode
        if mode == "timeout":
            time.sleep(self.timeout_seconds)
        if mode == "error_500":
            return _json({"error": {"code": 500, "message": "Internal Server Error"}}, 500)
        if mode in ("usage_limit_403", "usage_limit_429"):
            refused = _api_error(26, int(mode[-3:]))
            if self.retry_after is not None:
                refused.headers["Retry-After"] = str(self.retry_after)
            return refused
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        grant = self.access.get(token)
        if grant is None:
            return _api_error(2)
        user, expires_at = grant
        now = self.clock()
        if now >= expires_at:
            return _api_error(3)
        bucket, ts = int(now // BUCKET_SECONDS), int(now)
        if self.reading_bucket is not None:
            bucket = self.reading_bucket
        if endpoint == "getstationsdata":
            return _json(data.stations(user, bucket, ts, self.unreachable))
        if endpoint == "homesdata":
            return _json(data.homesdata(user, ts))
        home_id = (request.values.get("home_id") or "")
        if home_id != data.user_ids(user)["home"]:
            return _json({"error": {"code": 21, "message": "Invalid home_id"}}, 400)
        if endpoint == "homestatus":
            return _json(data.homestatus(user, bucket, ts, self.setpoints.get(user, {})))
        return self._set_room(user, request.form, ts)

    def _set_room(self, user: int, form, now: int) -> Response:
        room_id, mode = form.get("room_id"), form.get("mode")
        if room_id not in {r[0] for r in data.ROOMS}:
            return _json({"error": {"code": 21, "message": "Invalid room_id"}}, 400)
        if mode not in ("manual", "max", "home"):
            return _json({"error": {"code": 21, "message": "Invalid mode"}}, 400)
        temp = float(form.get("temp", 30 if mode == "max" else 19))
        end = int(form["endtime"]) if form.get("endtime") else None
        with self.lock:
            self.setpoints.setdefault(user, {})[room_id] = (mode, temp, end)
            self.actions.append({"user": user, "room_id": room_id, "mode": mode, "temp": temp})
        return _json({"status": "ok", "time_server": now})

    # --- test control ---------------------------------------------------------------------
    def control(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        action = request.path.removeprefix("/_sim/")
        with self.lock:
            if action == "stats":
                return _json({**self.stats, "users": self.users,
                              "setroomthermpoint_calls": self.actions})
            if action == "control":
                bucket = body.get("reading_bucket", self.reading_bucket)
                if bucket is not None and (isinstance(bucket, bool) or not isinstance(bucket, int)):
                    return _json({"error": "reading_bucket must be an integer or null"}, 400)
                self.mode = body.get("mode", self.mode)
                self.timeout_seconds = float(body.get("timeout_seconds", self.timeout_seconds))
                self.reading_bucket = bucket
                unreachable = body.get("unreachable", self.unreachable)
                if not isinstance(unreachable, list) or not set(unreachable) <= MODULES:
                    return _json({"error": f"unreachable: a list of {sorted(MODULES)}"}, 400)
                self.unreachable = unreachable
                self.retry_after = body.get("retry_after", self.retry_after)
                self.lose_refresh_answers = bool(body.get("lose_refresh_answers",
                                                          self.lose_refresh_answers))
            elif action == "revoke":
                # One account's grants ({"login": ...}, as on the consent page), or every one.
                login = body.get("login")
                if login is not None and login not in self.logins:
                    return _json({"error": "unknown login"}, 400)
                user = self.logins.get(login)
                for tokens in (self.refresh, self.access):
                    for token in [t for t, grant in tokens.items()
                                  if user is None or grant[0] == user]:
                        del tokens[token]
            elif action == "expire_tokens":
                self.access = {t: (u, 0) for t, (u, _) in self.access.items()}
            elif action == "clients":
                self.clients[body["client_id"]] = body["client_secret"]
            elif action == "grant":
                if body.get("client_id") not in self.clients:
                    return _json({"error": "invalid_client"}, 400)
                return _json(self._issue(self._new_user(), body["client_id"]))
        if action == "reset":
            self.reset()
        return _json({"ok": True})


def _verifier_matches(verifier: str, challenge: str, method: str) -> bool:
    """RFC 7636 section 4.6: 43 to 128 unreserved characters, transformed by the method the
    authorize request named."""
    if not 43 <= len(verifier) <= 128 or verifier.strip(UNRESERVED):
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        verifier = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return secrets.compare_digest(verifier.encode(), challenge.encode())


def create_simulator(**options) -> NetatmoSimulator:
    return NetatmoSimulator(**options)


if __name__ == "__main__":
    simulator_main(create_simulator, 8092, __doc__.splitlines()[0])
