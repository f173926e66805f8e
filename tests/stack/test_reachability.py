"""The reachability contract of shared/DESIGN.md, from every vantage point.

Targets are tried by DNS name and by every address of the target container on every network.
Traffic goes only to 127.0.0.1, the project's own containers, and the simulated LAN machine's
link to this host.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_observastack._compose import docker
from pytest_observastack._stack import Stack
from tests.stack._lan import Lan, lan_machine

# service -> (container port, path to ask for)
CONTROL_PLANE = {
    "secure-gateway": (8443, "config/runtime"),
    "obs-gateway": (9090, "metrics"),
    "agent": (9000, "agent/healthz"),
    "vault": (8200, "v1/sys/health"),
}
BACKEND = {"backend": (8000, "healthz")}


def _targets(
    stack: Stack, services: dict[str, tuple[int, str]], *, names: bool = True
) -> list[str]:
    """Every address of every service (and its DNS name, where a resolver could know it)."""
    targets = []
    for service, (port, path) in services.items():
        if names:
            targets.append(f"{service}:{port}/{path}")
        targets += [f"{ip}:{port}/{path}" for ip in stack.addresses(service).values()]
    return targets


def _unreachable(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The probe results that reached something (should be empty)."""
    return [r for r in results if "open" in r["tcp"].values()]


def _probe_from_network(stack: Stack, network: str, targets: list[str]) -> list[dict[str, Any]]:
    """Run the probe in a throwaway container attached to one of the stack's networks."""
    proc = docker(
        "run", "--rm", "--network", f"{stack.project}_{network}",
        "--dns-opt", "timeout:1", "--dns-opt", "attempts:1",
        "--label", f"com.docker.compose.project={stack.project}",
        stack.image, "python", "-m", "loadgen", "probe", "--timeout", "1", *targets,
        timeout=180,
    )  # fmt: skip
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


class TestFromPublicNetwork:
    def test_user_path_works(self, stack: Stack) -> None:
        proc = stack.exec("loadgen", "python", "-m", "loadgen", "probe",
                          "user-gateway:8080/api/whoami")  # fmt: skip
        (result,) = json.loads(proc.stdout)
        assert result["http_status"] == 200

    def test_control_plane_and_backend_unreachable(self, stack: Stack) -> None:
        targets = _targets(stack, CONTROL_PLANE | BACKEND)
        proc = stack.exec("loadgen", "python", "-m", "loadgen", "probe", "--timeout", "1",
                          *targets, timeout=180)  # fmt: skip
        results = json.loads(proc.stdout)
        assert len(results) == len(targets)
        by_name = {r["target"]: r for r in results}
        for service in CONTROL_PLANE | BACKEND:
            name_result = next(r for t, r in by_name.items() if t.startswith(f"{service}:"))
            assert name_result["dns"] is None, f"{service} resolves from public"
        assert _unreachable(results) == []


class TestFromControlNetwork:
    def test_control_plane_reachable(self, stack: Stack) -> None:
        targets = [f"{s}:{port}/{path}" for s, (port, path) in CONTROL_PLANE.items()]
        results = {r["host"]: r for r in _probe_from_network(stack, "control", targets)}
        assert results["secure-gateway"]["http_status"] == 401  # reachable; the token is next
        assert results["obs-gateway"]["http_status"] == 200
        assert results["vault"]["http_status"] == 200
        assert results["agent"]["http_status"] == 200

    def test_backend_unreachable(self, stack: Stack) -> None:
        results = _probe_from_network(stack, "control", _targets(stack, BACKEND))
        assert results[0]["dns"] is None
        assert _unreachable(results) == []


class TestFromHostLoopback:
    def test_each_path_answers_as_contracted(self, stack: Stack) -> None:
        get = lambda name, path: httpx.get(stack.url(name) + path, trust_env=False)  # noqa: E731
        assert get("user", "/api/whoami").status_code == 200
        assert get("secure", "/config/runtime").status_code == 401
        assert get("secure", "/agent/status").status_code == 401
        assert get("obs", "/metrics").status_code == 200
        assert get("vault", "/v1/sys/health").status_code == 200

    def test_backend_and_agent_have_no_host_port(self, stack: Stack) -> None:
        published = {s.service: s.publishers for s in stack.status()}
        assert published["backend"] == ()
        assert published["agent"] == ()


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode:
        pytest.fail("`ip netns` is not usable: the LAN vantage point needs root and iproute2")
    with lan_machine() as machine:
        yield machine


class TestFromAnotherMachineOnTheLan:
    def test_user_path_answers(self, stack: Stack, lan: Lan) -> None:
        port = stack.url("user").rsplit(":", 1)[1]
        (result,) = lan.probe(f"{lan.host_ip}:{port}/api/whoami")
        assert result["http_status"] == 200

    def test_published_control_plane_ports_do_not_answer(self, stack: Stack, lan: Lan) -> None:
        ports = [stack.url(n).rsplit(":", 1)[1] for n in ("secure", "obs", "vault")]
        results = lan.probe(*[f"{lan.host_ip}:{p}/" for p in ports])
        assert _unreachable(results) == []

    def test_container_addresses_do_not_answer(self, stack: Stack, lan: Lan) -> None:
        # By address only: Docker's service names mean nothing to another machine's resolver.
        results = lan.probe(*_targets(stack, CONTROL_PLANE | BACKEND, names=False))
        assert _unreachable(results) == []
