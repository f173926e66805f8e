"""A simulated "other machine on the LAN": a network namespace veth-linked to this host.

Addresses come from a small /30 of our own; the namespace's default route points at the host
end, so anything the namespace sends that the host would forward gets forwarded. Removed on
exit, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@dataclass(frozen=True)
class Lan:
    namespace: str
    host_ip: str  # the host end of the veth: "this machine" as the LAN machine sees it
    peer_ip: str

    def probe(self, *targets: str, timeout: float = 1.0) -> list[dict[str, object]]:
        argv = ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "loadgen",
                "probe", "--timeout", str(timeout), *targets]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
        result: list[dict[str, object]] = json.loads(proc.stdout)
        return result


@contextmanager
def lan_machine() -> Iterator[Lan]:
    tag = f"{os.getpid() % 10000}"
    ns, host_if, peer_if = f"obsk-lan-{tag}", f"obskh{tag}", f"obskp{tag}"
    octet = 1 + os.getpid() % 250
    host_ip, peer_ip = f"10.254.{octet}.1", f"10.254.{octet}.2"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
    subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10, check=False)
    # `ip netns exec` bind-mounts this over /etc/resolv.conf: the LAN machine asks no outside DNS.
    resolv_dir = Path("/etc/netns") / ns
    try:
        resolv_dir.mkdir(parents=True, exist_ok=True)
        (resolv_dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{peer_ip}/30", "dev", peer_if)
        _ip("-n", ns, "link", "set", peer_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "default", "via", host_ip)
        yield Lan(ns, host_ip, peer_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
        shutil.rmtree(resolv_dir, ignore_errors=True)
