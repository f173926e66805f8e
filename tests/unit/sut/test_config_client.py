"""``pytest_observastack._config_client.ConfigClient`` against the app in-process."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from pytest_observastack._config_client import (
    ConfigClient,
    ControlObjectNotFound,
    InvalidControlInput,
    VersionConflict,
)
from pytest_observastack._errors import ControlError

from .conftest import SUBJECT, AsgiClient

Hook = Callable[[httpx.Request], None]


def client_for(sut: AsgiClient, before: Hook | None = None) -> ConfigClient:
    """A ConfigClient whose transport hands each request to the in-process app, as the
    secure-gateway would (with the verified subject)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if before is not None:
            before(request)
        reply = sut.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers={**dict(request.headers), **SUBJECT},
        )
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)

    http = httpx.Client(base_url="http://secure", transport=httpx.MockTransport(handle))
    return ConfigClient(http)


def test_get_and_set_config(sut: AsgiClient) -> None:
    client = client_for(sut)
    config = client.get_config()
    assert (config.version, config.etag) == (1, '"config-1"')
    assert config["desired_workers"] == 2
    changed = client.set_config(rate_limit={"enabled": True, "rps": 5}, desired_workers=3)
    assert changed.version == 2
    assert changed["rate_limit"] == {"enabled": True, "rps": 5, "burst": 100}
    assert changed["desired_workers"] == 3


def test_set_config_retries_when_another_writer_got_in_between(sut: AsgiClient) -> None:
    raced: list[bool] = []

    def other_writer_first(request: httpx.Request) -> None:
        if request.method == "PATCH" and not raced:
            raced.append(True)
            etag = sut.control("GET", "/config/runtime").headers["etag"]
            sut.control("PATCH", "/config/runtime", json={"request_timeout_ms": 999},
                        headers={"If-Match": etag})  # fmt: skip

    client = client_for(sut, other_writer_first)
    changed = client.set_config(desired_workers=4)
    assert changed.version == 3
    assert (changed["desired_workers"], changed["request_timeout_ms"]) == (4, 999)


def test_strict_compare_and_set_raises_version_conflict(sut: AsgiClient) -> None:
    client = client_for(sut)
    stale = client.get_config().etag
    client.set_config(desired_workers=3)
    with pytest.raises(VersionConflict, match="412") as caught:
        client.set_config(if_match=stale, desired_workers=5)
    assert caught.value.status == 412
    assert client.get_config()["desired_workers"] == 3


def test_invalid_input_names_the_fields(sut: AsgiClient) -> None:
    client = client_for(sut)
    with pytest.raises(InvalidControlInput, match="nothing was changed") as caught:
        client.set_config(request_timeout_ms=-1, pool={"size": "big"})
    assert {e["field"] for e in caught.value.errors} == {"request_timeout_ms", "pool.size"}
    with pytest.raises(ValueError, match="at least one"):
        client.set_config()


def test_faults(sut: AsgiClient) -> None:
    client = client_for(sut)
    fault = client.inject("error", duration_s=30, status=503, first_n=2)
    assert (fault.kind, fault.params["status"], fault.state) == ("error", 503, "active")
    assert [f.id for f in client.faults()] == [fault.id]
    assert client.fault(fault.id).remaining_s == 30
    other = client.inject("latency", duration_s=5, fixed_ms=1)
    client.delete_fault(fault.id)
    assert client.clear_faults() == [other.id]
    assert client.faults() == []
    with pytest.raises(ControlObjectNotFound):
        client.delete_fault(fault.id)
    with pytest.raises(InvalidControlInput, match="duration_s"):
        client.inject("cpu", duration_s=-1)


def test_flags_and_state(sut: AsgiClient) -> None:
    client = client_for(sut)
    flag = client.set_flag("items_order", "price", description="cheapest first")
    assert (flag.type, flag.value, flag.known) == ("variant", "price", True)
    client.set_flag("custom", "b", variants=["a", "b"])
    assert set(client.flags()) == {"items_order", "custom"}
    client.delete_flag("custom")
    assert set(client.flags()) == {"items_order"}
    assert client.seed(7) == 7
    assert client.reset_state("all")["deleted_flags"] == ["items_order"]
    assert client.openapi()["openapi"] == "3.0.3"


def test_transport_errors_and_odd_answers_are_control_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    broken = ConfigClient(httpx.Client(base_url="http://x", transport=httpx.MockTransport(refuse)))
    with pytest.raises(ControlError, match="ConnectError"):
        broken.get_config()

    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    odd = ConfigClient(httpx.Client(base_url="http://x", transport=httpx.MockTransport(gateway)))
    with pytest.raises(ControlError, match="502") as caught:
        odd.faults()
    assert not isinstance(caught.value, InvalidControlInput)


def test_a_missing_subject_is_reported_as_refused(sut: AsgiClient) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        reply = sut.request(request.method, request.url.raw_path.decode())
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)

    client = ConfigClient(httpx.Client(base_url="http://x", transport=httpx.MockTransport(handle)))
    with pytest.raises(ControlError, match="403"):
        client.get_config()
