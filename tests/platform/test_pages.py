"""Cursor pages on the things and clients lists (?limit=&after=), beside the contract's plain
array for requests that pass neither."""

from __future__ import annotations

import pytest
from helpers import LAMP, OWM_KEY

THINGS, CLIENTS = "/api/v1/things", "/api/v1/connectors/clients"


def _things(api, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        resp = api.post(THINGS, json=LAMP)
        assert resp.status_code == 201, resp.json
        ids.append(resp.json["Id"])
    return ids


def _walk(api, path: str, key: str, limit: int) -> list:
    items, after, pages = [], None, 0
    while True:
        query = f"?limit={limit}" + (f"&after={after}" if after else "")
        page = api.get(f"{path}{query}").json
        items += page[key]
        after, pages = page["cursor"], pages + 1
        if not page["has_more"]:
            return items, pages


def test_no_arguments_is_the_contract_array_of_every_thing(api):
    ids = _things(api, 3)
    assert [link["href"].rsplit("/", 1)[1] for link in api.get(THINGS).json] == ids


def test_pages_walk_every_thing_once_in_the_array_order(api):
    _things(api, 7)
    everything = api.get(THINGS).json
    items, pages = _walk(api, THINGS, "things", limit=3)
    assert items == everything and pages == 3


def test_a_page_expands_components_like_the_array(api):
    _things(api, 3)
    page = api.get(f"{THINGS}?expand=components&limit=2").json
    assert page["has_more"] and page["things"] == api.get(f"{THINGS}?expand=components").json[:2]


def test_the_cursor_survives_deleting_the_thing_it_names(api):
    ids = _things(api, 4)
    first = api.get(f"{THINGS}?limit=2").json
    assert api.delete(f"{THINGS}/{ids[1]}").status_code == 204
    rest = api.get(f"{THINGS}?limit=2&after={first['cursor']}").json
    assert [link["href"].rsplit("/", 1)[1] for link in rest["things"]] == ids[2:]
    assert rest["has_more"] is False


def test_an_empty_page_keeps_the_cursor(api):
    _things(api, 1)
    first = api.get(f"{THINGS}?limit=1").json
    last = api.get(f"{THINGS}?after={first['cursor']}").json
    assert last == {"things": [], "cursor": first["cursor"], "has_more": False}


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=x", "limit=%D9%A5", "limit=%2B5", "limit=%205", "limit=1_0",
    "after=%25%25", "after=bm90LWEtY3Vyc29y",
    "after=1.a.b", "after=" + "1" * 18 + ".a"])
def test_bad_page_arguments_are_400(api, query):
    resp = api.get(f"{THINGS}?{query}")
    assert resp.status_code == 400, resp.json
    assert resp.json["status"] == 400


def test_clients_page_like_things(api):
    assert api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap", "configuration": {"app_key": OWM_KEY}}
    ).status_code == 201
    assert api.post(CLIENTS, json={
        "connector_type_id": "openweathermap", "configuration": {"city": "Berlin"}}
    ).status_code == 201
    everything = api.get(CLIENTS).json
    assert len(everything) == 1
    items, pages = _walk(api, CLIENTS, "clients", limit=1)
    assert items == everything and pages == 1


def test_any_cursor_of_the_documented_shape_names_a_place_in_the_order(api):
    ids = _things(api, 2)
    page = api.get(f"{THINGS}?after=0.x").json  # before every thing
    assert [link["href"].rsplit("/", 1)[1] for link in page["things"]] == ids
    assert api.get(f"{THINGS}?after={'9' * 17}.x").json["things"] == []  # after every one
