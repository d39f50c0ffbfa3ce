"""LeanSession prepares the same request as requests' own Session, and falls back to it
whenever the session has settings of its own to merge."""

from __future__ import annotations

import pytest
import requests

from thingbridge.http.provider_session import LeanSession

REQUESTS = [
    dict(method="get", url="http://h.example/a b", params={"q": "x y", "n": 1, "none": None}),
    dict(method="GET", url="http://h.example/p?x=1", params=[("a", "1"), ("a", "2")],
         headers={"Authorization": "Bearer t", "Accept": None}),
    dict(method="POST", url="https://h.example/token", data={"grant_type": "refresh_token"},
         auth=("id", "secret")),
    dict(method="post", url="https://h.example/json", json={"v": [1, 2]},
         headers={"User-Agent": "plugin/1"}),
    dict(method="PUT", url="http://h.example/raw", data=b"\x00\x01", params=b"k=v"),
    dict(method="GET", url="http://h.example/c", cookies={"s": "1"}),
]


def _plain(session):
    session.trust_env = False
    return session


@pytest.mark.parametrize("spec", REQUESTS)
def test_the_prepared_request_is_requests_own(spec):
    lean = _plain(LeanSession())
    ours = lean.prepare_request(requests.Request(**spec))
    theirs = requests.Session.prepare_request(lean, requests.Request(**spec))
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)
    assert lean.merge_environment_settings(ours.url, {}, None, None, None) \
        == requests.Session.merge_environment_settings(lean, ours.url, {}, None, None, None)


@pytest.mark.parametrize("setting", ["trust_env", "auth", "params", "proxies", "cookies",
                                     "hooks"])
def test_a_session_with_settings_of_its_own_takes_requests_path(setting, monkeypatch):
    lean = _plain(LeanSession())
    if setting == "trust_env":
        lean.trust_env = True
    elif setting == "auth":
        lean.auth = ("u", "p")
    elif setting == "params":
        lean.params = {"key": "v"}
    elif setting == "proxies":
        lean.proxies = {"https": "http://proxy.invalid:3128"}
    elif setting == "cookies":
        lean.cookies.set("s", "1", domain="h.example")
    else:
        lean.hooks["response"].append(lambda r, **kw: r)
    taken = []
    monkeypatch.setattr(requests.Session, "prepare_request",
                        lambda self, req: taken.append("prepare") or None)
    monkeypatch.setattr(requests.Session, "merge_environment_settings",
                        lambda self, *args: taken.append("environment") or None)
    lean.prepare_request(requests.Request("GET", "https://h.example/"))
    lean.merge_environment_settings("https://h.example/", {}, None, None, None)
    assert taken == ["prepare", "environment"]
