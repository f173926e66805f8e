"""The OpenAPI document of ``/config/*``: valid, served, and matched by every response
(schemathesis, in-process, with positive and negative cases)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sut.control.model import FaultLimits
from sut.control.openapi import openapi_document

from .conftest import SUBJECT, AsgiClient

DOCUMENT = openapi_document(FaultLimits(cpu_max_cores=2, memory_max_mb=64))
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def test_the_document_is_valid_openapi_3() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(DOCUMENT)


def test_the_document_is_served_on_the_control_path(sut: AsgiClient) -> None:
    response = sut.control("GET", "/config/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"] == "3.0.3"
    assert set(served["paths"]) == {
        "/config/runtime", "/config/faults", "/config/faults/{fault_id}", "/config/flags",
        "/config/flags/{name}", "/config/state/reset", "/config/state/seed",
    }  # fmt: skip
    assert sut.get("/config/openapi.json").status_code == 403


def test_every_operation_has_an_id_and_documents_its_errors() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["operationId"], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


@pytest.fixture
def quiet_sut(serve: Any, monkeypatch: pytest.MonkeyPatch) -> AsgiClient:
    """No hog processes: generated CPU and memory faults only exercise the API."""
    monkeypatch.setattr("sut.control.pressure.PressureOwner.reconcile", lambda *a, **k: None)
    client: AsgiClient = serve()
    return client


@SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_responses_match_the_document(case: Any, quiet_sut: AsgiClient) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://sut", headers=dict(SUBJECT))
    response = quiet_sut.request(kwargs.pop("method"), kwargs.pop("url"), **_httpx(kwargs))
    case.validate_response(response, checks=CHECKS)


def _httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis builds ``requests``-style arguments; httpx names one of them differently."""
    if "data" in kwargs and not isinstance(kwargs["data"], dict):
        kwargs["content"] = kwargs.pop("data")
    # Generated header values may hold latin-1 characters, which httpx refuses as str.
    headers = kwargs.get("headers") or {}
    kwargs["headers"] = {k: v.encode("latin-1", "replace") for k, v in headers.items()}
    kwargs.pop("allow_redirects", None)
    kwargs.pop("verify", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    return kwargs
