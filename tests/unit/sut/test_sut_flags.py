"""``/config/flags``: CRUD, validation, and the behaviour each known flag changes on ``/api/*``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import AsgiClient


def set_flag(sut: AsgiClient, name: str, value: Any, **extra: Any) -> Any:
    return sut.control("PUT", f"/config/flags/{name}", json={"value": value, **extra})


def test_create_read_update_delete_a_boolean_flag(sut: AsgiClient) -> None:
    assert sut.control("GET", "/config/flags/slow_path").status_code == 404
    created = set_flag(sut, "slow_path", True)
    assert created.status_code == 201
    flag = created.json()
    assert (flag["type"], flag["value"], flag["version"], flag["known"]) == (
        "boolean", True, 1, True,
    )  # fmt: skip
    assert created.headers["etag"] == '"flag-1"'
    updated = set_flag(sut, "slow_path", False)
    assert (updated.status_code, updated.json()["version"]) == (200, 2)
    read = sut.control("GET", "/config/flags/slow_path")
    assert read.json()["value"] is False
    assert read.headers["etag"] == '"flag-2"'
    assert sut.control("DELETE", "/config/flags/slow_path").status_code == 204
    assert sut.control("GET", "/config/flags/slow_path").status_code == 404
    assert sut.control("DELETE", "/config/flags/slow_path").status_code == 404


def test_a_custom_variant_flag_needs_its_variants(sut: AsgiClient) -> None:
    response = set_flag(sut, "checkout.theme", "dark", variants=["light", "dark"])
    assert response.status_code == 201, response.text
    assert response.json()["variants"] == ["light", "dark"]
    assert response.json()["known"] is False
    missing = set_flag(sut, "banner", "blue")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "variants"


def test_the_list_shows_flags_set_and_the_catalogue(sut: AsgiClient) -> None:
    set_flag(sut, "items_cache", True)
    body = sut.control("GET", "/config/flags").json()
    assert body["version"] == 1
    assert [f["name"] for f in body["flags"]] == ["items_cache"]
    known = {k["name"]: k for k in body["known"]}
    assert set(known) == {"slow_path", "items_cache", "extra_downstream_call", "items_order"}
    assert known["items_order"]["variants"] == ["id", "newest", "price"]


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("slow_path", {"value": "yes"}, "value"),
        ("items_order", {"value": True}, "value"),
        ("items_order", {"value": "random"}, "value"),
        ("items_order", {"value": "id", "variants": ["id", "x"]}, "variants"),
        ("custom", {"value": True, "variants": ["a"]}, "variants"),
        ("custom", {"value": "a", "variants": ["a", "a"]}, "variants"),
        ("custom", {"value": "a", "variants": []}, "variants"),
        ("custom", {"value": 1}, "value"),
        ("custom", {"value": None}, "value"),
        ("custom", {}, "value"),
        ("custom", {"value": True, "colour": "red"}, "colour"),
        ("custom", {"value": True, "description": "x" * 201}, "description"),
        ("Bad_Name", {"value": True}, "name"),
    ],
)
def test_bad_flags_are_422_and_nothing_is_stored(
    sut: AsgiClient, name: str, body: dict[str, Any], field: str
) -> None:
    response = sut.control("PUT", f"/config/flags/{name}", json=body)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    assert sut.control("GET", "/config/flags").json()["flags"] == []


def test_if_match_is_honoured_when_given(sut: AsgiClient) -> None:
    set_flag(sut, "slow_path", True)
    stale = sut.control(
        "PUT", "/config/flags/slow_path", json={"value": False}, headers={"If-Match": '"flag-9"'}
    )
    assert stale.status_code == 412
    fresh = sut.control(
        "PUT", "/config/flags/slow_path", json={"value": False}, headers={"If-Match": '"flag-1"'}
    )
    assert fresh.status_code == 200
    gone = sut.control("DELETE", "/config/flags/slow_path", headers={"If-Match": '"flag-1"'})
    assert gone.status_code == 412
    assert sut.control("GET", "/config/flags/slow_path").json()["value"] is False


# -- behaviour ---------------------------------------------------------------------------------


def test_slow_path_makes_items_slower_and_says_so(sut: AsgiClient) -> None:
    started = time.monotonic()
    fast = sut.get("/api/items")
    fast_s = time.monotonic() - started
    set_flag(sut, "slow_path", True)
    started = time.monotonic()
    slow = sut.get("/api/items")
    assert time.monotonic() - started >= 0.15 > fast_s
    assert "x-observastack-path" not in fast.headers
    assert slow.headers["x-observastack-path"] == "slow"


def test_items_cache_serves_hits_until_the_data_is_reset(sut: AsgiClient) -> None:
    assert "x-cache" not in sut.get("/api/items").headers
    set_flag(sut, "items_cache", True)
    assert sut.get("/api/items").headers["x-cache"] == "MISS"
    assert sut.get("/api/items").headers["x-cache"] == "HIT"
    sut.request("POST", "/api/items", json={"name": "new", "price_cents": 1})
    stale = sut.get("/api/items")
    assert (stale.headers["x-cache"], stale.json()["count"]) == ("HIT", 0)  # a cache is a cache
    sut.control("POST", "/config/state/seed", params={"items": 2})
    fresh = sut.get("/api/items")
    assert (fresh.headers["x-cache"], fresh.json()["count"]) == ("MISS", 2)
    set_flag(sut, "items_cache", False)
    assert "x-cache" not in sut.get("/api/items").headers


def test_extra_downstream_call_uses_the_pool_once_more(sut: AsgiClient) -> None:
    assert sut.get("/api/items").headers["x-downstream-calls"] == "1"
    set_flag(sut, "extra_downstream_call", True)
    started = time.monotonic()
    response = sut.get("/api/items")
    assert response.headers["x-downstream-calls"] == "2"
    assert time.monotonic() - started >= 0.025


def test_items_order_variant_orders_the_list(sut: AsgiClient) -> None:
    sut.control("POST", "/config/state/seed", params={"items": 5})
    ids = [i["id"] for i in sut.get("/api/items").json()["items"]]
    assert ids == [1, 2, 3, 4, 5]
    set_flag(sut, "items_order", "newest")
    body = sut.get("/api/items").json()
    assert (body["order"], [i["id"] for i in body["items"]]) == ("newest", [5, 4, 3, 2, 1])
    set_flag(sut, "items_order", "price")
    prices = [i["price_cents"] for i in sut.get("/api/items").json()["items"]]
    assert prices == sorted(prices)


def test_every_api_answer_says_which_versions_were_in_effect(sut: AsgiClient) -> None:
    assert sut.get("/api/whoami").headers["x-observastack-flags-version"] == "0"
    set_flag(sut, "slow_path", False)
    response = sut.get("/api/whoami")
    assert response.headers["x-observastack-flags-version"] == "1"
    assert response.headers["x-observastack-config-version"] == "1"
