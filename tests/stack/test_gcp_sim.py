"""The local GCP simulation: verifiers in the ``gcp`` profile, tokens from the metadata emulator.

One stack of its own (project ``obsk-gcpsim``, compose.gcp-sim.yaml layered on top), not the
session stack, which runs the local profile. It proves that the GCP token path works end to end
(google-auth's ``fetch_id_token`` against the emulator, through ``GcpDeployment`` as ``pytest
--gcp`` would use it) and that the gcp profile refuses what it must: another audience, another
service account, a Vault token, a token older than the maximum age.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gcp.sim import SimulatedGcpStack, fetch_id_token
from pytest_observastack._gcp import (
    SIM_CALLER_EMAIL,
    SIM_OTHER_EMAIL,
    GcpDeployment,
    write_sim_settings,
)
from pytest_observastack._leftovers import remove_project
from pytest_observastack._stack import StackOptions

REPO = Path(__file__).resolve().parents[2]
PROJECT = "obsk-gcpsim"
SECURE_PATHS = ["/config/runtime", "/agent/status"]

# Runs in a fresh interpreter: google-auth reads GCE_METADATA_HOST once, at import, and the
# emulator's port is only known once the stack is up. This is what `pytest --gcp` does.
PROBE = """
import json, sys
import httpx
from pytest_observastack._gcp import GcpDeployment
from pytest_observastack._tokens import RefreshingAuth

deployment = GcpDeployment.from_settings(sys.argv[1], {}, say=lambda message: None)
with deployment:
    source = deployment.token_source()
    auth = RefreshingAuth(source, max_age_s=deployment.options.identity.max_age_s)
    result = {"source": type(source).__name__, "ready": [s.service for s in deployment.status()
                                                         if s.ready]}
    with httpx.Client(base_url=deployment.url("secure"), auth=auth, trust_env=False) as client:
        for path in sys.argv[2:]:
            response = client.get(path)
            result[path] = {"status": response.status_code, "body": response.text[:300]}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedGcpStack]:
    remove_project(PROJECT)  # what a killed earlier run of this module may have left
    options = StackOptions(
        project=PROJECT,
        extra_compose_files=(REPO / "fixtures/compose/compose.gcp-sim.yaml",),
    )
    with SimulatedGcpStack(options, say=lambda message: print(f"\n[gcp-sim] {message}")) as stack:
        yield stack


@pytest.fixture(scope="module")
def metadata_url(sim: SimulatedGcpStack) -> str:
    return sim.metadata_url()


def secure_get(sim: SimulatedGcpStack, path: str, token: str) -> httpx.Response:
    return httpx.get(sim.url("secure") + path, headers={"Authorization": f"Bearer {token}"},
                     timeout=10.0, trust_env=False)  # fmt: skip


def assert_refused(response: httpx.Response, status: int, error: str, reason: str) -> None:
    """Refused with ``status``, a Bearer ``error`` and a problem body naming ``reason``."""
    __tracebackhide__ = True
    challenge = response.headers.get("WWW-Authenticate", "")
    seen = (response.status_code, f'error="{error}"' in challenge, reason in response.text)
    assert seen == (status, True, True), (
        f"expected {status} {error} ({reason}), got {response.status_code} {challenge!r}: "
        f"{response.text}"
    )


def test_gce_token_source_reaches_config_and_agent(sim: SimulatedGcpStack, tmp_path: Path) -> None:
    settings_file = tmp_path / "gcp-sim.toml"
    settings = write_sim_settings(sim, settings_file)
    assert settings.caller_email == SIM_CALLER_EMAIL
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GCE_METADATA", "OBSERVASTACK_GCP_"))}  # fmt: skip
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(settings_file), *SECURE_PATHS],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["source"] == "GceTokenSource"
    assert result["ready"] == ["user-gateway", "secure-gateway", "obs-gateway"]
    assert result["/agent/status"]["status"] == 200, result
    assert "master" in result["/agent/status"]["body"]
    assert result["/config/runtime"]["status"] == 200, result


@pytest.mark.parametrize("path", SECURE_PATHS)
def test_token_for_another_audience_is_refused(
    sim: SimulatedGcpStack, metadata_url: str, path: str
) -> None:
    token = fetch_id_token(metadata_url, "https://some-other-service.example")
    assert_refused(secure_get(sim, path, token), 401, "invalid_token", "wrong audience")


@pytest.mark.parametrize("path", SECURE_PATHS)
def test_token_of_a_service_account_not_allowed_is_refused(
    sim: SimulatedGcpStack, metadata_url: str, path: str
) -> None:
    # Validly signed by "Google" for the right audience: only the subject allow-list stops it.
    token = fetch_id_token(metadata_url, sim.options.identity.audience, account=SIM_OTHER_EMAIL)
    assert_refused(secure_get(sim, path, token), 403, "insufficient_scope", "subject not allowed")


@pytest.mark.parametrize("path", SECURE_PATHS)
def test_vault_token_is_refused(sim: SimulatedGcpStack, path: str) -> None:
    source = sim.vault_token_source()
    try:
        token = source.token()
    finally:
        source.close()
    # Signed by Vault's key, which is not in the (relayed) Google key set.
    assert_refused(secure_get(sim, path, token), 401, "invalid_token", "unknown kid")


def test_token_older_than_max_age_is_refused_younger_accepted(
    sim: SimulatedGcpStack, metadata_url: str
) -> None:
    audience = sim.options.identity.audience
    young = fetch_id_token(metadata_url, audience, backdate_s=240)
    assert secure_get(sim, "/agent/status", young).status_code == 200
    old = fetch_id_token(metadata_url, audience, backdate_s=400)  # max age 300 s + 5 s leeway
    response = secure_get(sim, "/agent/status", old)
    assert_refused(response, 401, "invalid_token", "token too old")


def test_emulator_is_not_reachable_from_the_public_network(sim: SimulatedGcpStack) -> None:
    targets = ["metadata:8225/oauth2/v3/certs", "jwks-relay:8226/oauth2/v3/certs"]
    for service in ("metadata", "jwks-relay"):
        port = 8225 if service == "metadata" else 8226
        targets += [f"{ip}:{port}/oauth2/v3/certs" for ip in sim.addresses(service).values()]
    proc = sim.exec("loadgen", "python", "-m", "loadgen", "probe", "--timeout", "1", *targets,
                    timeout=120)  # fmt: skip
    reached = [r for r in json.loads(proc.stdout) if "open" in r["tcp"].values()]
    assert reached == []


def test_gcp_deployment_status_against_the_simulation(
    sim: SimulatedGcpStack, tmp_path: Path
) -> None:
    settings_file = tmp_path / "gcp-sim.json"
    write_sim_settings(sim, settings_file)
    deployment = GcpDeployment.from_settings(settings_file, {}, say=lambda message: None)
    try:
        states = deployment.status()
    finally:
        deployment.down()
    assert [(s.service, s.ready) for s in states] == [
        ("user-gateway", True), ("secure-gateway", True), ("obs-gateway", True),
    ], states  # fmt: skip
