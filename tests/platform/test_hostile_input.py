"""Hostile input found by a fuzzing sweep, each a 500 before: a 4xx in the standard error body
now. (What gunicorn cannot frame, a chunked body's error among it, is answered under a real
gunicorn: tests/workers/test_metrics_processes.py; the console's forms and a registered URL's
policy are tested with their kind: tests/console/, tests/events/test_outbound_registration.py.)"""

from __future__ import annotations

import json

import pytest
import requests
from helpers import LAMP

from thingbridge.http.urls import outbound_url_problem, redirect_url_problem
from thingbridge.models import ActionRequest, Thing

THINGS = "/api/v1/things"
HOOKS = "/api/v1/webhooks"
SURROGATE = "\ud800"  # sent as the JSON escape \ud800, unpaired: no UTF-8 encodes it


def _assert_400(resp, needle: str = "") -> None:
    assert resp.status_code == 400, (resp.status_code, resp.data)
    assert resp.json["status"] == 400 and resp.json["error"] == "BAD_REQUEST"
    assert needle in resp.json["description"]


def test_json_nested_deeper_than_the_parser_recurses_is_400(api, flask_app):
    deep = "[" * 100_000 + "]" * 100_000
    _assert_400(api.post(HOOKS, data=deep, headers={"Content-Type": "application/json"}))
    _assert_400(api.post(THINGS, data='{"a":' * 100_000 + "1" + "}" * 100_000,
                         headers={"Content-Type": "application/json"}))
    with pytest.raises(ValueError):  # what Flask's get_json answers with a 400
        flask_app.json.loads(deep)


def test_integers_of_more_digits_than_python_converts_are_400(api):
    huge = "9" * 5000
    _assert_400(api.post(THINGS, data=f'{{"name": {huge}}}',
                         headers={"Content-Type": "application/json"}))
    hook = api.post(HOOKS, json={"url": "https://example.com/hook"}).json["id"]
    _assert_400(api.post(f"{HOOKS}/{hook}/replay", data=f'{{"after": {huge}}}',
                         headers={"Content-Type": "application/json"}))
    _assert_400(api.post(f"{HOOKS}/{hook}/replay", json={"after": 1.5}))  # not read as 1


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_has_not_are_400(api, flask_app, token):
    """Python's json reads NaN and Infinity, and 1e400 as infinity; a STRING property took
    them as "nan" and "inf"."""
    thing = {"name": "n", "maincomponentid": "c", "components": [{"id": "c", "properties": [
        {"id": "s", "type": "STRING", "value": "__"}]}]}
    body = json.dumps(thing).replace('"__"', token)
    _assert_400(api.post(THINGS, data=body, headers={"Content-Type": "application/json"}))
    with pytest.raises(ValueError):  # what Flask's get_json answers with a 400
        flask_app.json.loads(body)


def test_lone_surrogates_are_400_wherever_text_goes(api):
    thing = api.post(THINGS, json=LAMP).json["Id"]
    hook = api.post(HOOKS, json={"url": "https://example.com/hook"}).json["id"]
    attempts = [
        api.post(THINGS, json={**LAMP, "name": f"a{SURROGATE}b"}),
        api.post(THINGS, json={**LAMP, "attributes": [{"name": "room", "value": SURROGATE}]}),
        api.post(HOOKS, json={"url": "https://example.com/h", "description": SURROGATE}),
        api.patch(f"{HOOKS}/{hook}", json={"description": SURROGATE}),
        api.post("/api/v1/connectors/instances", json={"connector_type_id": SURROGATE,
                                                      "configuration": {}}),
        api.post("/api/v1/connectors/clients", json={
            "connector_type_id": "openweathermap", "configuration": {"city": SURROGATE}}),
        api.put(f"{THINGS}/{thing}/components/switch/properties/on", json={"value": SURROGATE}),
        api.post(f"{THINGS}/{thing}/components/switch/actions/setOn",
                 json={"on": SURROGATE}),
    ]
    for resp in attempts:
        _assert_400(resp, "lone surrogate")
    # A surrogate pair is one character (an emoji): stored and read back whole.
    emoji = api.post(THINGS, json={**LAMP, "name": "lamp \U0001f4a1"})
    assert emoji.status_code == 201
    assert api.get(f"{THINGS}/{emoji.json['Id']}").json["name"] == "lamp \U0001f4a1"


def test_basic_credentials_that_are_not_utf8_are_401_invalid_client(http):
    resp = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": "Basic //46/w=="})  # ff fe ':' ff
    assert resp.status_code == 401
    assert resp.json["error"] == "invalid_client" and resp.json["status"] == 401
    resp = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": "Basic not-base64!"})
    assert resp.status_code == 401 and resp.json["error"] == "invalid_client"


@pytest.mark.parametrize("url, problem", [
    ("https://example.com/\r\nX-Injected: 1", "control characters"),
    ("https://exa mple.com/", "spaces"),
    ("https://example.com/\tx", "control characters"),
    ("https://1.1.1.1:0/", "port 0"),
    ("https://xn--/", "not a valid host name"),
    ("https://a..b.example.com/", "not a valid host name"),
    ("https://169.254.169.254\u3002/", "public address"),  # U+3002: a dot to IDNA
    ("https://localhost./", "public address"),
    ("https://LOCALHOST/", "public address"),
    ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "public address"),
    ("https://-a.example.com/", "not a valid host name"),
    (f"https://{'a' * 64}.example.com/", "not a valid host name"),
    (f"https://{'a.' * 127}com/", "not a valid host name"),  # over 253 characters
    ("https://1.1.1.1.1/", "not a valid host name"),
    ("https://[v1.x]/", "not a valid IPv6 address"),
    ("https://@example.com/", "credentials"),
    ("https://:@example.com/", "credentials"),
    ("https://example.com\\@127.0.0.1/", "credentials"),
])
def test_malformed_or_disguised_urls_are_refused(url, problem):
    assert problem in outbound_url_problem(url)


@pytest.mark.parametrize("url", [
    "https://example.com/hook", "https://b\u00fccher.example/x", "https://a_b.example.com/",
    "https://EXAMPLE.COM./x", "https://example.com/p%20q?x=1", "https://[2606:4700::1]/x",
])
def test_well_formed_public_urls_pass(url):
    assert outbound_url_problem(url) is None


def test_return_urls_with_line_breaks_are_refused():
    """An OAuth return URI goes into a Location header: no line break may reach it."""
    assert "control characters" in redirect_url_problem("https://example.com/cb\r\n")


def _number_thing(value: str) -> dict:
    return {"name": "meter", "maincomponentid": "m", "components": [{"id": "m", "properties": [
        {"id": "reading", "type": "NUMBER", "value": value}]}]}


@pytest.mark.parametrize("value", ["1_000", "\uff11", " 1", "1 ", "inf", "NaN", "0x10", "1e"])
def test_number_values_only_in_the_notation_every_reader_parses(api, value):
    _assert_400(api.post(THINGS, json=_number_thing(value)), "is not a NUMBER")


@pytest.mark.parametrize("value", ["0", "-0.5", "+3", ".5", "5.", "1e+20", "1E-05", "007"])
def test_ordinary_number_values_pass(api, value):
    assert api.post(THINGS, json=_number_thing(value)).status_code == 201


def test_an_action_naming_a_parameter_twice_is_400(api):
    twice = {"id": "setOn", "parameters": [{"name": "on", "type": "BOOLEAN"},
                                           {"name": "on", "type": "STRING"}]}
    body = {**LAMP, "components": [{**LAMP["components"][0], "actions": [twice]}]}
    _assert_400(api.post(THINGS, json=body), "names a parameter twice")


def test_ids_ending_in_a_line_break_are_400(api):
    """Python's ``$`` matches before a final line break; the documented pattern's does not."""
    for body in ({**LAMP, "maincomponentid": "switch\n", "components": [
                    {**LAMP["components"][0], "id": "switch\n"}]},
                 {**LAMP, "components": [{**LAMP["components"][0], "actions": [
                     {"id": "setOn", "parameters": [{"name": "on\n"}]}]}]}):
        _assert_400(api.post(THINGS, json=body), "must match")
    _assert_400(api.get(f"{THINGS}?limit=1&after=1.abc%0A"), "not a cursor")


def test_an_empty_path_segment_is_404_not_a_redirect_elsewhere(api):
    """werkzeug merged ``//`` (and a decoded ``%2F``) with an HTML 308 to another resource."""
    hook = api.post(HOOKS, json={"url": "https://example.com/hook"}).json["id"]
    for method, path in (("get", f"{HOOKS}/%2F/deliveries"), ("get", "/api/v1//things"),
                         ("delete", f"{HOOKS}//{hook}"), ("post", f"{HOOKS}/{hook}//replay")):
        resp = getattr(api, method)(path)
        assert resp.status_code == 404 and resp.json["error"] == "NOT_FOUND", (path, resp.data)
    assert api.get(f"{HOOKS}/{hook}").status_code == 200  # the DELETE reached nothing


def test_slash_redirects_name_no_host_the_client_sent(http):
    """A cache keeping werkzeug's ``/docs`` -> ``http://<Host>/docs/`` would send everyone to
    the host one client named."""
    for path in ("/docs", "/console"):
        for host in ("evil.example", "xn--pple-43d.com", "evil.example:8443"):
            resp = http.get(path, headers={"Host": host})
            assert resp.status_code == 308 and resp.headers["Location"] == f"{path}/", host


def test_a_body_that_is_not_json_is_415(api):
    """Taken as no body it would fire the action without its parameters and answer a PATCH
    that changed nothing; an empty body, or JSON under any JSON media type, is as before."""
    api.post("/api/v1/actions/callback/register", json={"callbackUrl": "https://example.com/a"})
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    hook = api.post(HOOKS, json={"url": "https://example.com/h"}).json
    trigger = f"{THINGS}/{thing_id}/components/switch/actions/setOn"
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                         None):
        headers = {"Content-Type": content_type} if content_type else {}
        for method, path, body in (("POST", trigger, '{"on": "true"}'),
                                   ("PATCH", f"{HOOKS}/{hook['id']}",
                                    '{"url": "https://example.org/h"}')):
            resp = api.request(method, path, data=body, headers=headers)
            assert resp.status_code == 415, (content_type, method, resp.json)
            assert resp.json["error"] == "UNSUPPORTED_MEDIA_TYPE"
            assert resp.json["status"] == 415 and "JSON" in resp.json["description"]
    assert api.get(f"{HOOKS}/{hook['id']}").json["url"] == "https://example.com/h"
    assert ActionRequest.select().count() == 0
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        resp = api.post(trigger, data='{"on": "true"}', headers={"Content-Type": content_type})
        assert resp.status_code == 201 and resp.json["parameters"] == {"on": "true"}
    resp = api.patch(f"{HOOKS}/{hook['id']}", data="", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200


def _wire(text: str) -> str:
    """``text`` sent as UTF-8, as a WSGI server hands it on (each byte a Latin-1 character)."""
    return text.encode().decode("latin-1")


def test_the_subject_header_is_read_as_utf8(api, live_api):
    thing = api.as_subject(_wire("café ü 東京")).post(THINGS, json=LAMP).json
    assert Thing.get_by_id(thing["Id"]).external_subject_id == "café ü 東京"
    # and over real HTTP, as a client's bytes
    headers = {"Authorization": f"Bearer {api.token}", "X-External-Subject-Id": "café".encode()}
    resp = requests.post(f"{live_api}{THINGS}", json=LAMP, headers=headers, timeout=10)
    assert resp.status_code == 201
    assert Thing.get_by_id(resp.json()["Id"]).external_subject_id == "café"
    events = api.get("/api/v1/events?after=0").json["events"]
    assert {event["external_subject_id"] for event in events} == {"café ü 東京", "café"}
    # every printable ASCII value stays as it was
    ascii_subject = "".join(chr(code) for code in range(0x21, 0x7F))
    assert api.as_subject(ascii_subject).get(THINGS).status_code == 200
    # The joiners an emoji sequence and Persian spelling need, a soft hyphen and a BOM pass:
    # only what makes one subject look like another is refused.
    for subject in ("\U0001F468\u200d\U0001F469", "\u0645\u06cc\u200c\u062e", "ab\u00adc",
                    "\ufeffuser-17"):
        assert api.as_subject(_wire(subject)).get(THINGS).status_code == 200, subject


@pytest.mark.parametrize("subject, problem", [
    ("a\tb", "control character"), ("a\x1bb", "control character"),
    ("a\x7fb", "control character"), (_wire("a\u0085b"), "control character"),
    # A line break to JavaScript and log viewers, a bidi override ("alice" shown backwards),
    # a zero-width space (a second "alice"), and a lone NEL, which strip() would take away.
    (_wire("a\u2028b"), "control character"), (_wire("\u202eecila"), "control character"),
    (_wire("alice\u200b"), "control character"), (_wire("\u0085"), "control character"),
    ("caf\xe9", "not UTF-8"), ("\xff\xfe", "not UTF-8")])
def test_subject_headers_that_are_not_utf8_text_are_400(api, subject, problem):
    resp = api.as_subject(subject).get(THINGS)
    assert resp.status_code == 400 and resp.json["status"] == 400
    assert resp.json["error"] == "BAD_REQUEST" and problem in resp.json["description"]


def test_a_chunked_body_beyond_the_limit_is_413(api, live_api, flask_app):
    """werkzeug reads a chunked body up to the limit and stops: the cut JSON was a 400."""
    headers = {"Authorization": f"Bearer {api.token}", "X-External-Subject-Id": "alice",
               "Content-Type": "application/json"}

    def chunked(body: bytes):
        yield from (body[i:i + 65536] for i in range(0, len(body), 65536))

    limit = flask_app.config["MAX_CONTENT_LENGTH"]
    big = json.dumps({**LAMP, "name": "x" * 200, "pad": "y" * limit}).encode()
    resp = requests.post(f"{live_api}{THINGS}", data=chunked(big), headers=headers, timeout=10)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "PAYLOAD_TOO_LARGE" and resp.json()["status"] == 413
    resp = requests.post(f"{live_api}{THINGS}", data=chunked(json.dumps(LAMP).encode()),
                         headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text
