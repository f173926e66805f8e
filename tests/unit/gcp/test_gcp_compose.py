"""The compose overrides: the GCP SUT host (gcp/compose.sut-host.yaml) and the local simulation
(fixtures/compose/compose.gcp-sim.yaml), rendered by ``docker compose config`` (no engine needed)
so that Compose's own merge rules are what is checked."""

from __future__ import annotations

from typing import Any

import pytest
from gcp_testkit import (
    COMPOSE_DIR,
    SIM_OVERRIDE,
    SUT_HOST_OVERRIDE,
    Tagged,
    load_compose_yaml,
    render_compose,
)

from pytest_observastack._gcp import SIM_CALLER_EMAIL, SIM_METADATA_PORT, SIM_OTHER_EMAIL

CALLER = "observastack-control-host@proj.iam.gserviceaccount.com"
SUT_ENV = {
    "OBSERVASTACK_AUDIENCE": "aud-x",
    "OBSERVASTACK_GCP_ALLOWED_CALLERS": CALLER,
    "OBSERVASTACK_CONTROL_BIND": "10.42.0.10",
    "OBSERVASTACK_USER_BIND": "10.42.0.10",
}
VERIFIERS = ("secure-gateway", "agent")


def gcp_profile(audience: str, subject: str, jwks_url: str) -> dict[str, str]:
    return {
        "OBSERVASTACK_JWT_PROFILE": "gcp",
        "OBSERVASTACK_JWT_ISSUER": "https://accounts.google.com",
        "OBSERVASTACK_JWKS_URL": jwks_url,
        "OBSERVASTACK_JWT_AUDIENCE": audience,
        # compose.yaml sets 300 for local tokens; a Google token's exp - iat is always 3600
        "OBSERVASTACK_JWT_MAX_LIFETIME_S": "3600",
        "OBSERVASTACK_JWT_MAX_AGE_S": "300",
        "OBSERVASTACK_JWT_ALLOWED_SUBJECTS": subject,
        # inherited from compose.yaml: the relay re-serves Google's keys, cached 10 s here
        "OBSERVASTACK_JWKS_CACHE_S": "10",
    }


def jwt_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: v for k, v in env.items() if k.startswith(("OBSERVASTACK_JWT", "OBSERVASTACK_JWKS"))}


def ports(service: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(p.get("host_ip", ""), str(p.get("published", "")), p["target"])
            for p in service.get("ports") or ()]  # fmt: skip


@pytest.fixture(scope="module")
def sut_host() -> dict[str, Any]:
    return render_compose([COMPOSE_DIR / "compose.yaml", SUT_HOST_OVERRIDE], SUT_ENV)


@pytest.fixture(scope="module")
def sim() -> dict[str, Any]:
    files = [COMPOSE_DIR / "compose.yaml", COMPOSE_DIR / "compose.vault-standin.yaml",
             SIM_OVERRIDE]  # fmt: skip
    return render_compose(files, {})


# -- the SUT host ------------------------------------------------------------------------------
def test_sut_host_runs_the_topology_without_vault_and_loadgen(sut_host: dict[str, Any]) -> None:
    assert set(sut_host["services"]) == {"backend", "agent", "user-gateway", "secure-gateway",
                                         "obs-gateway", "jwks-relay"}  # fmt: skip
    assert "vault" not in sut_host["services"]["secure-gateway"].get("depends_on", {})


def test_sut_host_verifiers_use_the_gcp_profile(sut_host: dict[str, Any]) -> None:
    expected = gcp_profile("aud-x", CALLER, "http://jwks-relay:8226/oauth2/v3/certs")
    for name in VERIFIERS:
        assert jwt_env(sut_host["services"][name]) == expected, name


def test_sut_host_agent_shares_the_backends_pid_namespace_and_has_no_port(
    sut_host: dict[str, Any],
) -> None:
    services = sut_host["services"]
    assert services["agent"]["pid"] == "service:backend"
    assert list(services["agent"]["networks"]) == ["control"]
    for name in ("agent", "backend", "jwks-relay"):
        assert ports(services[name]) == [], name


def test_sut_host_publishes_the_three_paths_on_the_vpc_address_only(
    sut_host: dict[str, Any],
) -> None:
    services = sut_host["services"]
    assert ports(services["user-gateway"]) == [("10.42.0.10", "8080", 8080)]
    assert ports(services["secure-gateway"]) == [("10.42.0.10", "8443", 8443)]
    assert ports(services["obs-gateway"]) == [("10.42.0.10", "9090", 9090)]


def test_sut_host_relay_alone_has_a_way_out(sut_host: dict[str, Any]) -> None:
    networks = sut_host["networks"]
    relay = sut_host["services"]["jwks-relay"]
    assert set(relay["networks"]) == {"control", "egress"}
    assert not networks["egress"].get("internal")
    assert relay["environment"]["JWKS_RELAY_UPSTREAM"] == (
        "https://www.googleapis.com/oauth2/v3/certs"
    )
    for name, service in sut_host["services"].items():
        if name != "jwks-relay":
            assert "egress" not in service.get("networks", {}), name


def test_sut_host_refuses_to_render_without_audience_or_caller() -> None:
    for missing in ("OBSERVASTACK_AUDIENCE", "OBSERVASTACK_GCP_ALLOWED_CALLERS"):
        env = {k: v for k, v in SUT_ENV.items() if k != missing}
        with pytest.raises(AssertionError, match=missing):
            render_compose([COMPOSE_DIR / "compose.yaml", SUT_HOST_OVERRIDE], env)


def test_sut_host_override_uses_compose_merge_tags() -> None:
    data = load_compose_yaml(SUT_HOST_OVERRIDE)
    services = data["services"]
    assert services["vault"] == Tagged("!reset", None)
    assert services["loadgen"] == Tagged("!reset", None)
    assert isinstance(services["secure-gateway"]["ports"], Tagged)


# -- the local simulation ----------------------------------------------------------------------
def test_sim_verifiers_use_the_gcp_profile_with_the_emulators_keys(sim: dict[str, Any]) -> None:
    expected = gcp_profile("observastack-secure-path", SIM_CALLER_EMAIL,
                           "http://jwks-relay:8226/oauth2/v3/certs")  # fmt: skip
    for name in VERIFIERS:
        assert jwt_env(sim["services"][name]) == expected, name
    relay = sim["services"]["jwks-relay"]
    assert relay["environment"]["JWKS_RELAY_UPSTREAM"] == "http://metadata:8225/oauth2/v3/certs"


def test_sim_emulator_matches_the_python_constants(sim: dict[str, Any]) -> None:
    metadata = sim["services"]["metadata"]
    env = metadata["environment"]
    assert env["METADATA_EMULATOR_EMAIL"] == SIM_CALLER_EMAIL
    assert env["METADATA_EMULATOR_EXTRA_ACCOUNTS"] == SIM_OTHER_EMAIL
    assert env["METADATA_EMULATOR_PORT"] == str(SIM_METADATA_PORT)
    assert metadata["command"] == ["python", "-m", "gcp.metadata_emulator"]


def test_sim_emulator_is_on_the_control_side_and_published_on_loopback(
    sim: dict[str, Any],
) -> None:
    services = sim["services"]
    assert set(services["metadata"]["networks"]) == {"control", "hostlink"}
    assert [(ip, target) for ip, _, target in ports(services["metadata"])] == [
        ("127.0.0.1", SIM_METADATA_PORT)
    ]
    assert set(services["jwks-relay"]["networks"]) == {"control"}
    assert ports(services["jwks-relay"]) == []


def test_sim_keeps_vault_and_the_rest_of_the_local_topology(sim: dict[str, Any]) -> None:
    assert {"vault", "loadgen", "backend", "agent"} <= set(sim["services"])
    assert sim["services"]["agent"]["pid"] == "service:backend"
