"""Chaos, runner side: disrupt one part of the stack, restore the steady state, verify it, and
record the control-plane downtime observed meanwhile.

Data in: a local ``Stack`` (the engine is used from the runner side only; the agent never touches
it), an ``AgentClient`` (to see the backend's generation and the agent answer again) and a probe
callable (``ControlPlaneProbe``: a fresh token, then ``GET /agent/status`` through the
secure-path). Data out: one ``ChaosEvent`` per action (what, when, and the ``DowntimeWindow``s in
which the probe failed), handed to ``on_event`` and kept in ``Chaos.events``; and
``SteadyStateNotRestored`` when the stack does not come back in time.

Every action runs the same frame: check the steady state, start the probe, disrupt, restore
(``Stack.wait_ready`` converges what Docker gave up on; the agent must answer, for a new backend
generation when the backend's PID namespace was replaced; the user-path must answer), stop the
probe. A context-manager action restores on exit, also when its body raised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pytest_observastack._agent import AgentClient, AgentStatus
from pytest_observastack._compose import Compose, docker
from pytest_observastack._downtime import ChaosEvent, DowntimeProbe
from pytest_observastack._errors import ControlError, ObservastackError, SteadyStateNotRestored
from pytest_observastack._stack import Stack
from pytest_observastack._waits import wait_until

__all__ = ["Chaos"]

CONTROL_NETWORK = "control"
VAULT_PORT_VARIABLE = "OBSERVASTACK_VAULT_PORT"  # compose.yaml: the vault service's host port


class Chaos:
    """Disrupt, restore, verify, record. Every action returns (or yields) once steady again."""

    def __init__(
        self,
        stack: Stack,
        agent: AgentClient,
        *,
        probe: Callable[[], object] | None = None,
        restore_timeout_s: float = 120.0,
        probe_interval_s: float = 0.1,
        on_event: Callable[[ChaosEvent], None] | None = None,
    ) -> None:
        self.stack = stack
        self.agent = agent
        self.probe = probe or agent.status
        self.restore_timeout_s = restore_timeout_s
        self.probe_interval_s = probe_interval_s
        self.on_event = on_event
        self.events: list[ChaosEvent] = []

    # -- the backend -------------------------------------------------------------------------
    def restart_backend(self) -> ChaosEvent:
        """``docker restart``: the PID namespace ends, the agent dies with it; Docker restarts
        both (restart policy); the agent must answer for the new backend generation."""
        with self._action("restart backend", new_generation=True):
            docker("restart", self.stack.container("backend"), timeout=90)
        return self.events[-1]

    def kill_backend(self) -> ChaosEvent:
        """``docker kill``: a manual stop, so no restart policy applies; converge starts it."""
        with self._action("kill backend", new_generation=True):
            self._kill("backend")
        return self.events[-1]

    def stop_start_backend(self) -> ChaosEvent:
        """``compose stop`` then ``start``: the agent stays exited until converge starts it."""
        with self._action("stop and start backend", new_generation=True):
            self.stack.compose.run("stop", "backend", timeout=90)
            self.stack.compose.run("start", "backend", timeout=90)
        return self.events[-1]

    @contextmanager
    def paused_backend(self) -> Iterator[None]:
        """``with chaos.paused_backend(): ...`` freezes the backend's processes for the block."""
        container = self.stack.container("backend")
        with self._action("pause backend", new_generation=False):
            docker("pause", container, timeout=30)
            try:
                yield
            finally:
                docker("unpause", container, timeout=30)

    def pause_backend(self, seconds: float) -> ChaosEvent:
        """Freeze the backend for ``seconds``."""
        with self.paused_backend():
            time.sleep(seconds)  # the length of the pause is what was asked for
        return self.events[-1]

    # -- the control plane -------------------------------------------------------------------
    def kill_agent(self) -> ChaosEvent:
        """SIGKILL the agent's container; converge starts it again in the backend's namespace."""
        with self._action("kill agent", new_generation=False):
            self._kill("agent")
        return self.events[-1]

    def restart_vault(self) -> ChaosEvent:
        """Restart Vault (dev mode forgets its configuration) at the same address; restoring
        re-runs the bootstrap and waits until the secure-path accepts a fresh token.

        ``docker restart`` would publish Vault on a new ephemeral host port and cut off every
        client holding the old URL (the session's token source among them), which no real
        Vault restart does; so the container is recreated with its host port pinned."""
        with self._action("restart vault", new_generation=False, then=self._bootstrap_vault):
            compose = self.stack.compose
            port = self.stack.url("vault").rsplit(":", 1)[1]
            pinned = Compose(compose.project, compose.files,
                             {**compose.env, VAULT_PORT_VARIABLE: port})  # fmt: skip
            pinned.run("up", "--detach", "--no-deps", "--no-build", "--force-recreate", "vault",
                       timeout=120)  # fmt: skip
        return self.events[-1]

    @contextmanager
    def control_network_cut(self) -> Iterator[None]:
        """``with chaos.control_network_cut(): ...``: every container on the ``control`` network
        is disconnected from it for the block (``docker network disconnect``), then reconnected
        with its aliases, so service names resolve again."""
        network = f"{self.stack.project}_{CONTROL_NETWORK}"
        members = self._members(network)
        with self._action(f"cut the control network ({len(members)} containers)",
                          new_generation=False):  # fmt: skip
            cut: list[str] = []
            try:
                for container in members:
                    docker("network", "disconnect", network, container, timeout=30)
                    cut.append(container)
                yield
            finally:
                for container in cut:
                    flags = [arg for alias in members[container] for arg in ("--alias", alias)]
                    docker("network", "connect", *flags, network, container, timeout=30)

    def cut_control_network(self, seconds: float) -> ChaosEvent:
        """Cut the control network for ``seconds``."""
        with self.control_network_cut():
            time.sleep(seconds)  # the length of the cut is what was asked for
        return self.events[-1]

    # -- the frame ---------------------------------------------------------------------------
    @contextmanager
    def _action(
        self, what: str, *, new_generation: bool, then: Callable[[], object] | None = None
    ) -> Iterator[None]:
        before = self._steady_before(what)
        started = time.time()
        probe = DowntimeProbe(self.probe, interval_s=self.probe_interval_s).start()
        try:
            try:
                yield
            except BaseException as exc:
                try:
                    self._restore(what, before, new_generation, then)
                except ObservastackError as failed:
                    exc.add_note(f"and afterwards: {failed}")
                raise
            self._restore(what, before, new_generation, then)
        finally:
            windows = probe.stop()
            event = ChaosEvent(what, started, time.time(), windows)
            self.events.append(event)
            if self.on_event is not None:
                self.on_event(event)

    def _steady_before(self, what: str) -> AgentStatus:
        try:
            return self.agent.status()
        except ObservastackError as exc:
            raise ControlError(
                f"chaos ({what}) needs the steady state first, but the agent does not answer: "
                f"{exc}\nWhat to do: observastack status --project {self.stack.project}"
            ) from exc

    def _restore(
        self,
        what: str,
        before: AgentStatus,
        new_generation: bool,
        then: Callable[[], object] | None,
    ) -> None:
        deadline = time.monotonic() + self.restore_timeout_s

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        try:
            self.stack.wait_ready(left())  # converges services Docker will not restart
            if then is not None:
                then()
            if new_generation:
                self.agent.wait_rebound(before.generation, timeout=left())
            wait_until(self.agent.status, lambda s: len(s.workers) > 0, timeout=left(),
                       what="the agent to answer with workers", interval=0.1)  # fmt: skip
            wait_until(lambda: self.agent.user.get("/api/whoami").status_code, lambda c: c == 200,
                       timeout=left(), what="the user-path to answer /api/whoami with 200",
                       interval=0.1)  # fmt: skip
        except ObservastackError as exc:
            project = self.stack.project
            raise SteadyStateNotRestored(
                f"chaos ({what}): the stack did not return to its steady state within "
                f"{self.restore_timeout_s:.0f} s: {exc}\nWhat to do: observastack status "
                f"--project {project}; observastack logs SERVICE --project {project}; "
                f"observastack converge --project {project} starts what Docker gave up on"
            ) from exc

    def _bootstrap_vault(self) -> None:
        # Token sources holding the root token re-run the bootstrap by themselves as soon as
        # Vault answers; two bootstraps at once can trip over each other, so retry.
        def bootstrap() -> bool:
            self.stack.bootstrap_identity()
            return True

        wait_until(bootstrap, bool, timeout=60, interval=0.5,
                   what="the Vault bootstrap to succeed again")  # fmt: skip

    def _kill(self, service: str) -> None:
        container = self.stack.container(service)
        docker("kill", "--signal", "KILL", container, timeout=30)
        wait_until(
            lambda: docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip(),
            lambda running: running == "false",
            timeout=30,
            what=f"Docker to see {service} stopped",
        )

    def _members(self, network: str) -> dict[str, list[str]]:
        """Containers on ``network`` and the aliases they have there (service name first)."""
        fmt = "{{range $id, $c := .Containers}}{{$id}}\n{{end}}"
        ids = docker("network", "inspect", "--format", fmt, network).stdout.split()
        members = {}
        for container in ids:
            alias_fmt = '{{json (index .NetworkSettings.Networks "' + network + '").Aliases}}'
            raw = docker("inspect", "--format", alias_fmt, container).stdout.strip()
            aliases = [a for a in _json_list(raw) if not container.startswith(a)]
            members[container] = aliases
        return members


def _json_list(raw: str) -> list[str]:
    value = json.loads(raw or "null")
    return [str(v) for v in value] if isinstance(value, list) else []
