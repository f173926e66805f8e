"""``/config/runtime``: the document, ETag / If-Match concurrency, validation, audit."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from sut.control.errors import PreconditionFailed
from sut.control.http import AUDIT_LOGGER
from sut.control.model import CONFIG_SPEC, default_config
from sut.control.schema import merge_patch
from sut.control.store import ControlStore

from .conftest import AsgiClient

PROBLEM = "application/problem+json"


def current(sut: AsgiClient) -> tuple[dict[str, Any], str]:
    response = sut.control("GET", "/config/runtime")
    assert response.status_code == 200
    return response.json(), response.headers["etag"]


def patch(
    sut: AsgiClient, body: Any, etag: str | None = None, headers: dict[str, str] | None = None
) -> Any:
    headers = {**({"If-Match": etag} if etag else {}), **(headers or {})}
    return sut.control("PATCH", "/config/runtime", json=body, headers=headers)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [getattr(r, "audit") for r in caplog.records if r.name == AUDIT_LOGGER]  # noqa: B009


def test_get_returns_the_document_with_version_and_etag(sut: AsgiClient) -> None:
    doc, etag = current(sut)
    assert etag == '"config-1"'
    assert doc["version"] == 1
    assert doc["updated_by"] == "defaults"
    assert {k: doc[k] for k in default_config(2)} == default_config(2)


def test_patch_with_the_current_etag_changes_only_what_it_names(sut: AsgiClient) -> None:
    before, etag = current(sut)
    response = patch(sut, {"rate_limit": {"rps": 5}, "desired_workers": 3}, etag)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"config-2"'
    after = response.json()
    assert after["version"] == 2
    assert after["updated_by"] == "instructor@example"
    assert after["rate_limit"] == {**before["rate_limit"], "rps": 5}
    assert after["desired_workers"] == 3
    assert after["pool"] == before["pool"]
    assert current(sut)[0] == after


def test_patch_accepts_the_merge_patch_media_type(sut: AsgiClient) -> None:
    _, etag = current(sut)
    response = sut.control(
        "PATCH",
        "/config/runtime",
        content=b'{"request_timeout_ms": 1234}',
        headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["request_timeout_ms"] == 1234


def test_put_replaces_every_setting(sut: AsgiClient) -> None:
    _doc, etag = current(sut)
    new = {
        **default_config(2),
        "request_timeout_ms": 777,
        "pool": {"size": 3, "acquire_timeout_ms": 5},
    }
    response = sut.control("PUT", "/config/runtime", json=new, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in new} == new


def test_put_ignores_read_only_members_of_a_document_it_got(sut: AsgiClient) -> None:
    doc, etag = current(sut)
    doc["request_timeout_ms"] = 4321
    response = sut.control("PUT", "/config/runtime", json=doc, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


def test_put_without_every_setting_is_422_naming_the_missing_ones(sut: AsgiClient) -> None:
    _, etag = current(sut)
    response = sut.control(
        "PUT", "/config/runtime", json={"desired_workers": 2}, headers={"If-Match": etag}
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"rate_limit", "request_timeout_ms", "pool", "fault_max_duration_s"}


def test_missing_if_match_is_428_and_nothing_changes(sut: AsgiClient) -> None:
    response = patch(sut, {"desired_workers": 4})
    assert response.status_code == 428
    assert response.headers["content-type"] == PROBLEM
    assert "If-Match" in response.json()["detail"]
    assert current(sut)[0]["version"] == 1


def test_a_stale_etag_is_412_with_the_current_one(sut: AsgiClient) -> None:
    _, first = current(sut)
    assert patch(sut, {"desired_workers": 3}, first).status_code == 200
    response = patch(sut, {"desired_workers": 5}, first)
    assert response.status_code == 412
    assert response.headers["etag"] == '"config-2"'
    assert response.json()["type"] == "urn:observastack:sut:stale-version"
    assert current(sut)[0]["desired_workers"] == 3


@pytest.mark.parametrize(
    ("header", "status"),
    [('"config-1"', 200), ("*", 200), ('"config-0", "config-1"', 200), ('W/"config-1"', 412),
     ("config-1", 412), ("", 412)],
)  # fmt: skip
def test_if_match_uses_strong_comparison(sut: AsgiClient, header: str, status: int) -> None:
    assert (
        patch(sut, {"desired_workers": 3}, None, headers={"If-Match": header}).status_code == status
    )


def test_two_writers_with_the_same_etag_one_wins_the_other_gets_412(sut: AsgiClient) -> None:
    _, etag = current(sut)
    first, second = sut.gather(
        ("PATCH", "/config/runtime", {"json": {"desired_workers": 3}, "headers": _h(etag)}),
        ("PATCH", "/config/runtime", {"json": {"request_timeout_ms": 9}, "headers": _h(etag)}),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    doc, _ = current(sut)
    assert doc["version"] == 2
    winner = first if first.status_code == 200 else second
    assert doc == winner.json()


def _h(etag: str) -> dict[str, str]:
    return {"If-Match": etag, "X-Observastack-Subject": "instructor@example"}


def test_compare_and_set_holds_between_processes_racing_on_sqlite(tmp_path: Path) -> None:
    """Eight connections (as eight workers would have) write with the same version: one wins."""
    ControlStore(tmp_path / "data", tmp_path / "rt", default_config(2)).close()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def write(n: int) -> None:
        store = ControlStore(tmp_path / "data", tmp_path / "rt", default_config(2))
        start.wait()
        try:
            store.write_config(
                lambda rec: rec.version == 1,
                lambda doc: merge_patch(doc, {"request_timeout_ms": 100 + n}),
                f"writer-{n}",
            )
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("412")
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["412"] * 7 + ["won"]
    store = ControlStore(tmp_path / "data", tmp_path / "rt", default_config(2))
    record = store.config()
    store.close()
    assert record.version == 2
    assert record.updated_by is not None
    assert record.updated_by.startswith("writer-")


INVALID = [
    ({"rate_limit": {"rps": -1}}, "rate_limit.rps", "must be a number > 0"),
    ({"rate_limit": {"rps": 0}}, "rate_limit.rps", "> 0"),
    ({"rate_limit": {"rps": "fast"}}, "rate_limit.rps", "got string 'fast'"),
    ({"rate_limit": {"enabled": 1}}, "rate_limit.enabled", "true or false"),
    ({"rate_limit": {"burst": 2.5}}, "rate_limit.burst", "must be an integer"),
    ({"request_timeout_ms": -5}, "request_timeout_ms", "1..60000"),
    ({"request_timeout_ms": 10**9}, "request_timeout_ms", "1..60000"),
    ({"request_timeout_ms": True}, "request_timeout_ms", "got boolean true"),
    ({"request_timeout_ms": 5.0}, "request_timeout_ms", "must be an integer"),
    ({"pool": {"size": 0}}, "pool.size", "1..1024"),
    ({"pool": {"acquire_timeout_ms": -1}}, "pool.acquire_timeout_ms", "0..60000"),
    ({"pool": 5}, "pool", "must be a JSON object"),
    ({"desired_workers": 17}, "desired_workers", "1..16"),
    ({"desired_workers": None}, "desired_workers", "must not be null"),
    ({"fault_max_duration_s": 0}, "fault_max_duration_s", "1..3600"),
    ({"bogus": 1}, "bogus", "unknown field"),
    ({"pool": {"bogus": 1}}, "pool.bogus", "unknown field"),
]


@pytest.mark.parametrize(("body", "field", "detail"), INVALID)
def test_bad_fields_are_422_naming_the_field_and_change_nothing(
    sut: AsgiClient, body: dict[str, Any], field: str, detail: str
) -> None:
    before, etag = current(sut)
    response = patch(sut, body, etag)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:observastack:sut:validation"
    assert problem["status"] == 422
    [error] = problem["errors"]
    assert error["field"] == field
    assert error["pointer"] == "#/" + field.replace(".", "/")
    assert detail in error["detail"]
    assert field in problem["detail"]
    assert current(sut) == (before, etag)


def test_every_bad_field_is_reported_at_once(sut: AsgiClient) -> None:
    _, etag = current(sut)
    body = {"rate_limit": {"rps": -1, "burst": "x"}, "desired_workers": 0, "nope": True}
    response = patch(sut, body, etag)
    assert response.status_code == 422
    fields = sorted(e["field"] for e in response.json()["errors"])
    assert fields == ["desired_workers", "nope", "rate_limit.burst", "rate_limit.rps"]


def test_nan_and_infinity_are_refused(sut: AsgiClient) -> None:
    _, etag = current(sut)
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        response = sut.control(
            "PATCH",
            "/config/runtime",
            content=b'{"rate_limit": {"rps": %s}}' % literal,
            headers={"If-Match": etag, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, literal


@pytest.mark.parametrize(
    ("content", "content_type", "status", "kind"),
    [
        (b"{not json", "application/json", 400, "malformed"),
        (b"", "application/json", 400, "malformed"),
        (b"[1, 2]", "application/json", 422, "validation"),
        (b'"text"', "application/json", 422, "validation"),
        (b"desired_workers=3", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        (b"{}" + b" " * 20_000, "application/json", 413, "too-large"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(
    sut: AsgiClient, content: bytes, content_type: str, status: int, kind: str
) -> None:
    before, etag = current(sut)
    response = sut.control(
        "PATCH",
        "/config/runtime",
        content=content,
        headers={"If-Match": etag, "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"urn:observastack:sut:{kind}"
    assert current(sut) == (before, etag)


def test_the_control_api_refuses_callers_without_a_verified_subject(sut: AsgiClient) -> None:
    response = sut.get("/config/runtime")
    assert response.status_code == 403
    assert "secure-path" in response.json()["detail"]
    _, etag = current(sut)
    response = sut.request(
        "PATCH", "/config/runtime", json={"desired_workers": 5}, headers={"If-Match": etag}
    )
    assert response.status_code == 403
    assert current(sut)[0]["desired_workers"] == 2


def test_the_subject_check_can_be_turned_off(serve: Any) -> None:
    sut = serve(control_require_subject=False)
    assert sut.get("/config/runtime").status_code == 200


def test_every_change_writes_one_audit_line_with_the_caller(
    sut: AsgiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    _, etag = current(sut)
    patch(sut, {"desired_workers": 3}, etag, headers={"X-Request-Id": "req-1"})
    patch(sut, {"desired_workers": 99}, '"config-2"')
    patch(sut, {"desired_workers": 4}, etag)
    lines = audit_lines(caplog)
    assert [(line["result"], line["status"]) for line in lines] == [
        ("ok", 200),
        ("rejected", 422),
        ("rejected", 412),
    ]
    ok = lines[0]
    assert ok["event"] == "config.patch"
    assert ok["caller"] == "instructor@example"
    assert ok["request_id"] == "req-1"
    assert ok["version_before"] == 1
    assert ok["version_after"] == 2
    assert ok["changes"] == {"desired_workers": {"from": 2, "to": 3}}
    assert "desired_workers" in lines[1]["reason"]


def test_the_audit_line_is_one_json_object_on_stdout(
    sut: AsgiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    _, etag = current(sut)
    capsys.readouterr()
    patch(sut, {"desired_workers": 3}, etag)
    lines = [line for line in capsys.readouterr().out.splitlines() if '"sut.audit"' in line]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "config.patch"
    assert record["caller"] == "instructor@example"


def test_the_desired_worker_count_is_published_for_the_agent(
    sut: AsgiClient, tmp_path: Path
) -> None:
    published = tmp_path / "data" / "desired-workers.json"
    assert json.loads(published.read_text())["desired_workers"] == 2
    _, etag = current(sut)
    patch(sut, {"desired_workers": 5}, etag)
    data = json.loads(published.read_text())
    assert (data["desired_workers"], data["config_version"]) == (5, 2)


def test_a_stored_document_missing_new_settings_is_completed_from_defaults(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "d", tmp_path / "r", default_config(2))
    old = default_config(2)
    del old["fault_max_duration_s"]
    store.write_config(lambda r: True, lambda d: (old, []), "test")
    assert store.config().doc == default_config(2)
    store.close()


def test_the_spec_accepts_the_defaults() -> None:
    assert CONFIG_SPEC.validate(default_config(3)) == (default_config(3), [])
