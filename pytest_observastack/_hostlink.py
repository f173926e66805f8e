"""Close the one gap Docker 20.10 leaves in the reachability contract.

Control-plane ports are published on 127.0.0.1 only, but Docker 20.10 still forwards packets that
another machine routes to a container's address on the (non-internal) ``hostlink`` network
straight to the published port (Docker 28 added its own filter for this). One ``DOCKER-USER`` rule
per stack drops new connections into that bridge that did not start on it; host-originated
traffic (the loopback port proxy) does not pass through FORWARD and is unaffected.
Needs root and iptables; without them the stack still runs and the gap is reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from pytest_observastack._compose import Compose, docker

__all__ = ["hostlink_bridge", "protect_hostlink", "unprotect_hostlink"]


def hostlink_bridge(compose: Compose) -> str | None:
    proc = docker(
        "network", "inspect", "--format", "{{.Id}}", f"{compose.project}_hostlink", check=False
    )
    network_id = proc.stdout.strip()
    return f"br-{network_id[:12]}" if proc.returncode == 0 and network_id else None


def _rule(bridge: str, project: str) -> list[str]:
    return [
        "DOCKER-USER", "-o", bridge, "!", "-i", bridge,
        "-m", "conntrack", "--ctstate", "NEW",
        "-m", "comment", "--comment", f"observastack:{project}", "-j", "DROP",
    ]  # fmt: skip


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=20, check=False
    )


def protect_hostlink(compose: Compose) -> str:
    """Install the rule (idempotent). Returns a one-line account of what was done."""
    bridge = hostlink_bridge(compose)
    if bridge is None:
        return "hostlink network not found; nothing to protect"
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return (
            f"not root or no iptables: other machines that route to this host can reach "
            f"control-plane containers on {bridge} by address; as root run: "
            f"iptables -I {' '.join(_rule(bridge, compose.project))}"
        )
    if _iptables("-C", *_rule(bridge, compose.project)).returncode == 0:
        return f"DOCKER-USER rule for {bridge} already present"
    proc = _iptables("-I", *_rule(bridge, compose.project))
    if proc.returncode != 0:
        return f"could not add DOCKER-USER rule for {bridge}: {proc.stderr.strip()[:200]}"
    return f"DOCKER-USER drops routed connections into {bridge}"


def unprotect_hostlink(project: str) -> int:
    """Remove every rule this project installed (also for bridges already gone)."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return 0
    listing = _iptables("-S", "DOCKER-USER")
    removed = 0
    for line in listing.stdout.splitlines():
        if f"observastack:{project}" in line and line.startswith("-A "):
            args = line.split()[1:]
            args = [a.strip('"') for a in args]
            if _iptables("-D", *args).returncode == 0:
                removed += 1
    return removed
