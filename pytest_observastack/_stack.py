"""The stack: build, bring up, wait, converge, describe and tear down one compose project.

``Stack`` is a plain context manager (no pytest needed): the ``stack`` fixture and the
``observastack`` CLI are thin wiring around it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from pytest_observastack._build import BuildPlan, build_images, default_image, project_root
from pytest_observastack._compose import Compose, docker, engine_problem
from pytest_observastack._errors import EngineError, ServiceNotReady
from pytest_observastack._hostlink import protect_hostlink, unprotect_hostlink
from pytest_observastack._leftovers import cleanup_leftovers, remove_project, run_project_name
from pytest_observastack._tokens import VaultTokenSource
from pytest_observastack._waits import wait_until

__all__ = ["ENDPOINTS", "SERVICES", "IdentitySettings", "ServiceState", "Stack", "StackOptions"]

SERVICES = ("backend", "agent", "user-gateway", "secure-gateway", "obs-gateway", "vault", "loadgen")
# endpoint name -> (service, container port) published on the host
ENDPOINTS = {
    "user": ("user-gateway", 8080),
    "secure": ("secure-gateway", 8443),
    "obs": ("obs-gateway", 9090),
    "vault": ("vault", 8200),
}
# endpoint name -> the compose variable pinning its host port (compose.yaml)
PORT_VARIABLES = {
    "user": "OBSERVASTACK_USER_PORT",
    "secure": "OBSERVASTACK_SECURE_PORT",
    "obs": "OBSERVASTACK_OBS_PORT",
    "vault": "OBSERVASTACK_VAULT_PORT",
}
REAL_VAULT_IMAGE = "hashicorp/vault:1.17"
_GAVE_UP = ("exited", "created", "dead")  # states Docker will not leave by itself
Say = Callable[[str], None]


@dataclass(frozen=True)
class IdentitySettings:
    """Local-mode identity: Vault dev mode (or its stand-in) issuing secure-path tokens.

    These are development credentials of a throwaway dev-mode Vault, not secrets.
    """

    audience: str = "observastack-secure-path"
    issuer: str = "http://vault:8200"  # as the validators inside the stack reach Vault
    root_token: str = "root"  # noqa: S105 - Vault dev mode's well-known root token
    username: str = "control-panel"
    password: str = "observastack-dev"  # noqa: S105 - dev-mode Vault, documented
    role: str = "secure-path"


@dataclass(frozen=True)
class StackOptions:
    """How to stand a stack up. Every field has a sane default."""

    project: str | None = None  # None: unique per run (obsk-<pid>-<hex>), or keyed for reuse
    extra_compose_files: tuple[Path, ...] = ()
    keep: bool = False  # leave it running at exit
    reuse: bool = False  # attach to a running stack with the same key (and keep it)
    build: bool = True
    vault: str = "auto"  # auto | real | standin
    image: str | None = None  # None: the content-addressed image of this source tree
    wait_timeout_s: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    identity: IdentitySettings = field(default_factory=IdentitySettings)


@dataclass(frozen=True)
class ServiceState:
    service: str
    state: str  # running, exited, restarting, ...
    health: str  # healthy, unhealthy, starting, "" (no healthcheck)
    exit_code: int
    publishers: tuple[tuple[str, int, int], ...]  # (host ip, host port, container port)

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in ("healthy", "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _compose_dir() -> Path:
    return project_root() / "fixtures" / "compose"


def _vault_available(say: Say) -> bool:
    image = os.environ.get("OBSERVASTACK_VAULT_IMAGE", REAL_VAULT_IMAGE)
    if docker("image", "inspect", image, check=False).returncode == 0:
        return True
    if docker("pull", "--quiet", image, timeout=300, check=False).returncode == 0:
        return True
    say(f"{image} cannot be had here; using the Vault API stand-in (identity/vault_standin)")
    return False


def _running_vault_is_real(project: str) -> bool | None:
    """For a project that already runs: is its vault the real image? None if it has no vault."""
    proc = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                  "--filter", "label=com.docker.compose.service=vault", "--format", "{{.Image}}",
                  check=False)  # fmt: skip
    images = proc.stdout.split()
    if proc.returncode != 0 or not images:
        return None
    return not images[0].startswith("observastack/")


def _agent_in_backoff(states: dict[str, ServiceState]) -> bool:
    """The agent sits in Docker's restart delay although the backend it waits for is healthy.

    After a backend restart the agent's first delay (100 ms) has long passed by the time the
    backend is healthy (about 1 s); only an escalated back-off leaves it ``restarting`` then."""
    agent, backend = states.get("agent"), states.get("backend")
    return bool(agent and backend and agent.state == "restarting" and backend.ready)


class Stack:
    """One ObservaStack compose project on the local engine."""

    def __init__(self, options: StackOptions | None = None, *, say: Say = print) -> None:
        self.options = options or StackOptions()
        self.say = say
        self._compose: Compose | None = None
        self._endpoints: dict[str, str] | None = None
        self.started_here = False
        self.vault_mode = ""
        self.image = ""

    # -- identity of the project ---------------------------------------------------------
    @property
    def compose(self) -> Compose:
        if self._compose is None:
            raise ServiceNotReady("the stack has not been prepared; call up() or attach() first")
        return self._compose

    @property
    def project(self) -> str:
        return self.compose.project

    def _prepare(self) -> Compose:
        problem = engine_problem()
        if problem:
            raise EngineError(problem)
        opts = self.options
        self.image = opts.image or default_image()
        if opts.build:
            build_images(BuildPlan(image=opts.image), say=self.say)
        use_real = {"real": True, "standin": False}.get(opts.vault)
        if use_real is None and opts.project:
            use_real = _running_vault_is_real(opts.project)
        if use_real is None:
            use_real = _vault_available(self.say)
        self.vault_mode = "real" if use_real else "standin"
        files = [_compose_dir() / "compose.yaml"]
        if not use_real:
            files.append(_compose_dir() / "compose.vault-standin.yaml")
        files += [Path(f).resolve() for f in opts.extra_compose_files]
        key = self._key(files)
        if opts.project:
            project = opts.project
        elif opts.reuse:
            project = f"obsk-keep-{key[:10]}"
        else:
            project = run_project_name(os.getpid(), secrets.token_hex(3))
        env = {
            "OBSERVASTACK_IMAGE": self.image,
            "OBSERVASTACK_AUDIENCE": opts.identity.audience,
            "OBSERVASTACK_VAULT_ROOT_TOKEN": opts.identity.root_token,
            "OBSERVASTACK_STACK_KEY": key,
            "OBSERVASTACK_OWNER": f"pid-{os.getpid()}",
            **opts.env,
        }
        self._compose = Compose(project, tuple(files), env)
        return self._compose

    def _key(self, files: Sequence[Path]) -> str:
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.read_bytes())
        image_id = docker("image", "inspect", "--format", "{{.Id}}", self.image,
                          check=False).stdout.strip()  # fmt: skip
        digest.update(image_id.encode())
        digest.update(repr(sorted(self.options.env.items())).encode())
        return digest.hexdigest()

    # -- lifecycle -------------------------------------------------------------------------
    def up(self) -> Stack:
        """Build if needed, start (or attach to) the stack, wait until healthy, converge."""
        for project in cleanup_leftovers():
            self.say(f"removed leftover stack {project} (its test run is gone)")
        compose = self._prepare()
        # A kept stack (--reuse) or one named by the caller that already runs with the same
        # compose files, image and settings is attached to as it is: no compose up at all.
        if (self.options.reuse or self.options.project) and self._attachable():
            self.say(f"attaching to the running stack {compose.project}")
            self.bootstrap_identity()
            return self
        compose = self._compose = self._with_pinned_ports(compose)
        self.say(f"starting stack {compose.project} (vault: {self.vault_mode}) ...")
        started = time.monotonic()
        self.started_here = True
        compose.run("up", "--detach", "--no-build", "--wait",
                    "--wait-timeout", str(int(self.options.wait_timeout_s)),
                    timeout=self.options.wait_timeout_s + 60, check=False)  # fmt: skip
        self.wait_ready(self.options.wait_timeout_s)
        self.bootstrap_identity()
        self.say(f"stack {compose.project} healthy in {time.monotonic() - started:.1f} s")
        self.say(protect_hostlink(compose))
        return self

    def _with_pinned_ports(self, compose: Compose) -> Compose:
        """Give every published port a fixed host port unless the caller chose one.

        An empty host port is ephemeral: Docker picks a new one each time the container restarts
        (``docker restart``, the restart policy), which would strand the URLs and token sources
        already handed out. Ports a running container of this project publishes are kept (no
        recreation); the others are free ones picked now."""
        published = {
            (state.service, target): host_port
            for state in self.status()
            for _ip, host_port, target in state.publishers
        }
        env = dict(compose.env)
        for name, (service, port) in ENDPOINTS.items():
            variable = PORT_VARIABLES[name]
            if not (os.environ.get(variable) or env.get(variable)):
                env[variable] = str(published.get((service, port)) or _free_port())
        return Compose(compose.project, compose.files, env)

    def bootstrap_identity(self) -> None:
        """Configure Vault to issue secure-path tokens (idempotent; token sources redo it after
        a Vault restart by themselves)."""
        from identity.bootstrap import bootstrap_vault

        ident = self.options.identity
        bootstrap_vault(self.url("vault"), ident.root_token, audience=ident.audience,
                        issuer=ident.issuer, username=ident.username, password=ident.password,
                        role=ident.role)  # fmt: skip
        # The verifiers may have cached Vault's key set from before the bootstrap; they refetch
        # on an unknown kid at a bounded rate. Wait until a fresh token is accepted end to end.
        source = self.token_source()
        try:
            auth = {"Authorization": f"Bearer {source.token()}"}
            wait_until(
                lambda: httpx.get(self.url("secure") + "/config/", headers=auth, trust_env=False),
                lambda r: r.status_code != 401,
                timeout=30,
                interval=0.5,
                what="the secure-path to accept a freshly issued token",
            )
        finally:
            source.close()

    def token_source(self) -> VaultTokenSource:
        """A token source for the secure path (Vault userpass login, then an OIDC token)."""
        ident = self.options.identity
        return VaultTokenSource(self.url("vault"), ident.username, ident.password, ident.role,
                                root_token=ident.root_token, audience=ident.audience,
                                issuer=ident.issuer)  # fmt: skip

    def _attachable(self) -> bool:
        """Every service ready, and built from the same compose files, image and settings."""
        states = self.status()
        if not {s.service for s in states if s.ready} >= set(SERVICES):
            return False
        keys = docker("ps", "--filter", f"label=com.docker.compose.project={self.project}",
                      "--format", '{{.Label "io.observastack.key"}}').stdout.split()  # fmt: skip
        return set(keys) == {self.compose.env["OBSERVASTACK_STACK_KEY"]}

    def down(self) -> None:
        """Remove containers, networks and volumes (``down -v``), even if half started."""
        if self._compose is None:
            return
        self.say(f"removing stack {self.project} ...")
        proc = self.compose.run("down", "--volumes", "--remove-orphans", "--timeout", "5",
                                timeout=180, check=False)  # fmt: skip
        if proc.returncode != 0:
            remove_project(self.project)
        unprotect_hostlink(self.project)
        self._endpoints = None

    def __enter__(self) -> Stack:
        try:
            return self.up()
        except BaseException:
            if not (self.options.keep or self.options.reuse):
                self.down()
            raise

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not (self.options.keep or self.options.reuse):
            self.down()

    # -- state -----------------------------------------------------------------------------
    def status(self) -> list[ServiceState]:
        states = []
        for row in self.compose.ps():
            publishers = tuple(
                (str(p.get("URL", "")), int(p.get("PublishedPort") or 0), int(p["TargetPort"]))
                for p in row.get("Publishers") or ()
                if p.get("PublishedPort")
            )
            states.append(
                ServiceState(
                    service=str(row["Service"]),
                    state=str(row.get("State", "")),
                    health=str(row.get("Health", "")),
                    exit_code=int(row.get("ExitCode") or 0),
                    publishers=publishers,
                )
            )
        return sorted(states, key=lambda s: s.service)

    def wait_ready(self, timeout: float, services: Sequence[str] = SERVICES) -> list[ServiceState]:
        """Wait until every named service runs and is healthy; converge the agent on the way."""
        deadline = time.monotonic() + timeout
        while True:
            states = {s.service: s for s in self.status()}
            missing = [name for name in services if not (name in states and states[name].ready)]
            if not missing:
                return list(states.values())
            if any(states[n].state in _GAVE_UP for n in missing if n in states) or (
                _agent_in_backoff(states)
            ):
                self.converge(quiet=True, states=states)
            if time.monotonic() >= deadline:
                raise ServiceNotReady(self._not_ready_message(missing, states, timeout))
            time.sleep(0.25)

    def _not_ready_message(
        self, missing: list[str], states: dict[str, ServiceState], timeout: float
    ) -> str:
        lines = [f"stack {self.project}: not ready after {timeout:.0f} s"]
        for name in missing:
            st = states.get(name)
            seen = f"{st.state}/{st.health or '-'} exit={st.exit_code}" if st else "no container"
            lines.append(f"  {name}: {seen}; last log lines:")
            lines += [f"    {line}" for line in self.logs(name, tail=8).splitlines()]
        lines.append(f"Inspect with: observastack status --project {self.project}; "
                     f"observastack logs SERVICE --project {self.project}")  # fmt: skip
        return "\n".join(lines)

    def converge(
        self, *, quiet: bool = False, states: dict[str, ServiceState] | None = None
    ) -> list[str]:
        """Start every service Docker will not restart by itself, in dependency order.

        Docker applies no restart policy after ``docker stop`` or ``docker kill`` (both count as
        a manual stop), and gives up on the agent when the backend it shares a PID namespace
        with was down at its restart attempt (LIBRARY-FACTS §7). ``compose up`` starts them again,
        the agent only once the backend is healthy. Returns the services that were started."""
        states = states or {s.service: s for s in self.status()}
        if _agent_in_backoff(states):
            # Each shared-fate death within 10 s of the last doubles Docker's restart delay
            # (100 ms ... 1 min); a manual restart resets it.
            if not quiet:
                self.say("the agent waits in Docker's restart back-off while the backend is "
                         "healthy: restarting it now")  # fmt: skip
            self.compose.run("restart", "agent", timeout=60, check=False)
            return ["agent"]
        stopped = sorted(n for n in SERVICES if n not in states or states[n].state in _GAVE_UP)
        if not stopped:
            return []
        if not quiet:
            self.say(f"not running and not being restarted by Docker: {', '.join(stopped)}; "
                     "starting them")  # fmt: skip
        # No --no-recreate: an agent whose backend container was replaced must be recreated to
        # join the new one's PID namespace ("cannot join PID of a non running container").
        self.compose.run("up", "--detach", "--no-build", *stopped,
                         timeout=self.options.wait_timeout_s, check=False)  # fmt: skip
        return stopped

    def endpoints(self) -> dict[str, str]:
        """Published URLs: user, secure, obs, vault (``http://127.0.0.1:PORT``)."""
        if self._endpoints is None:
            by_service = {s.service: s for s in self.status()}
            found = {}
            for name, (service, port) in ENDPOINTS.items():
                state = by_service.get(service)
                for _ip, host_port, target in state.publishers if state else ():
                    if target == port:
                        found[name] = f"http://127.0.0.1:{host_port}"
            if set(found) != set(ENDPOINTS):
                raise ServiceNotReady(
                    f"stack {self.project}: published ports missing for "
                    f"{sorted(set(ENDPOINTS) - set(found))}; is the stack up?"
                )
            self._endpoints = found
        return dict(self._endpoints)

    def url(self, name: str) -> str:
        return self.endpoints()[name]

    def logs(self, service: str, tail: int = 200) -> str:
        proc = self.compose.run("logs", "--no-color", "--no-log-prefix", "--tail", str(tail),
                                service, timeout=30, check=False)  # fmt: skip
        return proc.stdout + proc.stderr

    def restart(self, service: str, timeout: float = 60) -> None:
        self.compose.run("restart", service, timeout=timeout)
        self.wait_ready(timeout)

    def exec(self, service: str, *argv: str, timeout: float = 60) -> Any:
        """Run a command inside a service's container (runner side only; never the agent's)."""
        return self.compose.run("exec", "-T", service, *argv, timeout=timeout, check=False)

    def container(self, service: str) -> str:
        cid = self.compose.container_id(service)
        if not cid:
            raise ServiceNotReady(f"stack {self.project}: no container for {service}")
        return cid

    def addresses(self, service: str) -> dict[str, str]:
        """The service container's address on each network: {network short name: ip}."""
        fmt = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}\n{{end}}"
        out = docker("inspect", "--format", fmt, self.container(service)).stdout
        prefix = f"{self.project}_"
        pairs = (line.split() for line in out.splitlines() if line.strip())
        return {net.removeprefix(prefix): ip for net, ip in pairs}
