"""The nginx auth_request service: pure response mapping, then the real process on a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from identity_testkit import AUDIENCE, ISSUER, SUBJECT, JwksServer, claims, wait_until

from identity import Decision
from identity.authz import REASON_HEADER, SUBJECT_HEADER, AuthzSettings, authz_response

REPO = Path(__file__).resolve().parents[3]


def test_ok_decision_is_204_with_subject() -> None:
    status, headers, body = authz_response(Decision(True, 200, "entity-1", "ok", {}))
    assert (status, headers, body) == (204, {SUBJECT_HEADER: "entity-1"}, b"")


def test_rejection_is_problem_json_with_challenge() -> None:
    status, headers, body = authz_response(Decision(False, 401, None, "token expired", {}))
    assert status == 401
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="token expired"'
    )
    assert headers[REASON_HEADER] == "token expired"
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "token expired",
    }


def test_reason_header_is_safe_for_nginx_json_bodies() -> None:
    _, headers, _ = authz_response(Decision(False, 401, None, 'algorithm not allowed: "x\\', {}))
    assert headers[REASON_HEADER] == "algorithm not allowed: 'x'"


def test_forbidden_subject_is_403() -> None:
    status, headers, body = authz_response(Decision(False, 403, "x", "subject not allowed", {}))
    assert status == 403
    assert headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert json.loads(body)["title"] == "Forbidden"


def test_settings_from_env() -> None:
    assert AuthzSettings.from_env({}) == AuthzSettings("127.0.0.1", 8081)
    env = {"OBSERVASTACK_AUTHZ_HOST": "0.0.0.0", "OBSERVASTACK_AUTHZ_PORT": "9000"}
    assert AuthzSettings.from_env(env) == AuthzSettings("0.0.0.0", 9000)
    with pytest.raises(ValueError, match="OBSERVASTACK_AUTHZ_PORT"):
        AuthzSettings.from_env({"OBSERVASTACK_AUTHZ_PORT": "http"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSERVASTACK_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_missing_configuration_exits_2_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "identity.authz"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "OBSERVASTACK_JWT_ISSUER is required" in result.stderr


@pytest.fixture(scope="module")
def authz_service(
    keys: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, JwksServer, Path]]:
    from identity_testkit import public_jwk

    log_path = tmp_path_factory.mktemp("authz") / "authz.log"

    jwks = JwksServer({"keys": [public_jwk(keys.k1, "k1")]}).start()
    port = _free_port()
    env = _env(
        OBSERVASTACK_AUTHZ_PORT=str(port),
        OBSERVASTACK_JWT_ISSUER=ISSUER,
        OBSERVASTACK_JWKS_URL=jwks.url,
        OBSERVASTACK_JWT_AUDIENCE=AUDIENCE,
    )
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "identity.authz"], env=env, cwd=REPO, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"authz exited early: {log_path.read_text()}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, what="authz /healthz")
        yield url, jwks, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        jwks.stop()


def test_service_accepts_a_valid_token(
    authz_service: tuple[str, JwksServer, Path], sign: Callable[..., str]
) -> None:
    url, _, _ = authz_service
    for method in ("GET", "POST", "DELETE"):
        response = httpx.request(
            method,
            url + "/authz",
            headers={"Authorization": f"Bearer {sign()}", "X-Original-URI": "/config/limits"},
        )
        assert response.status_code == 204, response.text
        assert response.headers[SUBJECT_HEADER] == SUBJECT


def test_service_rejects_with_challenge_and_problem(
    authz_service: tuple[str, JwksServer, Path], sign: Callable[..., str]
) -> None:
    url, _, _ = authz_service
    expired = sign(claims(iat=int(time.time()) - 900, exp=int(time.time()) - 600))
    response = httpx.get(url + "/authz", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="token expired"'
    )
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["detail"] == "token expired"
    assert response.headers[REASON_HEADER] == "token expired"
    assert expired.split(".")[1] not in response.text


def test_service_rejects_missing_and_duplicate_headers(
    authz_service: tuple[str, JwksServer, Path], sign: Callable[..., str]
) -> None:
    url, _, _ = authz_service
    assert httpx.get(url + "/authz").status_code == 401
    token = sign()
    two = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    response = httpx.get(url + "/authz", headers=two)
    assert response.status_code == 401
    assert response.json()["detail"] == "more than one Authorization header"


def test_service_answers_oversized_tokens_with_4xx(
    authz_service: tuple[str, JwksServer, Path], sign: Callable[..., str]
) -> None:
    url, _, _ = authz_service
    token = sign(claims(padding="x" * 9_000))
    response = httpx.get(url + "/authz", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401  # nginx auth_request passes only 2xx / 401 / 403 on
    assert response.json()["detail"] == "authorization header too large"
    huge = sign(claims(padding="x" * 30_000))  # beyond any header limit: Sanic refuses it
    response = httpx.get(url + "/authz", headers={"Authorization": f"Bearer {huge}"})
    assert 400 <= response.status_code < 500, response.status_code


def test_service_logs_one_json_line_per_decision_without_tokens(
    authz_service: tuple[str, JwksServer, Path], sign: Callable[..., str]
) -> None:
    url, _, log_path = authz_service
    token = sign()
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Original-URI": "/agent/status?x=1",
        "X-Original-Method": "PUT",
    }
    assert httpx.get(url + "/authz", headers=headers).status_code == 204

    def logged() -> list[dict[str, Any]]:
        lines = log_path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r.get("event") == "authz_decision"]

    wait_until(lambda: any(r["path"] == "/agent/status" for r in logged()), timeout=10,
               what="the decision log line")  # fmt: skip
    assert [r["method"] for r in logged() if r["path"] == "/agent/status"] == ["PUT"]
    assert any(r.get("event") == "authz_start" for r in map(json.loads, _json_lines(log_path)))
    text = log_path.read_text()
    assert token.split(".")[1] not in text
    assert token.split(".")[2] not in text


def _json_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("{")]
