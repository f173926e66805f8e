"""The ``--gcp`` target: the two-host deployment on Google Cloud, seen from the control host.

``GcpDeployment`` gives tests the part of a local ``Stack``'s surface that makes sense without a
Docker engine: ``url(name)``, ``endpoints()``, ``token_source()`` (a ``GceTokenSource``),
``status()`` (HTTP probes of the three paths), ``project`` and ``options.identity.audience``.
Whatever needs the engine (``exec``, ``logs``, ``restart``, ``converge``, ``compose``, ...) raises
``NotAvailableOnGcp``: such tests are marked ``local_only``.

Data in: ``gcp.settings.GcpSettings`` (a TOML / JSON / .env file that ``terraform output -raw
gcp_settings`` prints, and ``OBSERVASTACK_GCP_*`` environment variables). Data out: HTTP
requests to the three paths and ID-token requests to the metadata server (or to its emulator
when ``metadata_host`` is set).

``write_sim_settings(stack, path)`` writes the settings of the local GCP simulation
(``fixtures/compose/compose.gcp-sim.yaml``), so ``pytest --gcp`` runs on one machine too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Protocol

import httpx
import jwt

from gcp.settings import ENDPOINT_NAMES, SETTINGS_ENV, GcpSettings, GcpSettingsError
from pytest_observastack._errors import ObservastackError, ServiceNotReady, TokenError
from pytest_observastack._tokens import GceTokenSource, TokenSource

__all__ = [
    "SETTINGS_ENV",
    "SIM_CALLER_EMAIL",
    "SIM_OTHER_EMAIL",
    "EndpointState",
    "GcpDeployment",
    "GcpSettings",
    "GcpSettingsError",
    "NotAvailableOnGcp",
    "write_sim_settings",
]

GOOGLE_ISSUER = "https://accounts.google.com"
# The local simulation's identities (fixtures/compose/compose.gcp-sim.yaml says the same).
SIM_CALLER_EMAIL = "observastack-orchestrator@observastack-sim.iam.gserviceaccount.com"
SIM_OTHER_EMAIL = "observastack-student@observastack-sim.iam.gserviceaccount.com"
SIM_METADATA_SERVICE, SIM_METADATA_PORT = "metadata", 8225


class NotAvailableOnGcp(ObservastackError):
    """The operation needs the local Docker engine; the test should be marked ``local_only``."""


@dataclass(frozen=True)
class EndpointState:
    """One path's health as an HTTP probe saw it (shaped like a local ``ServiceState``)."""

    service: str
    url: str
    state: str  # answering | unexpected | unreachable
    detail: str

    @property
    def health(self) -> str:
        return "healthy" if self.state == "answering" else "unhealthy"

    @property
    def ready(self) -> bool:
        return self.state == "answering"


@dataclass(frozen=True)
class GcpIdentity:
    audience: str
    caller_email: str
    max_age_s: int = 300
    issuer: str = GOOGLE_ISSUER


@dataclass(frozen=True)
class GcpOptions:
    """What tests read from ``stack.options`` (the local ``StackOptions`` has the same names)."""

    project: str
    identity: GcpIdentity
    wait_timeout_s: float = 60.0
    keep: bool = field(default=True, init=False)  # a GCP deployment is never torn down by tests


# service -> (endpoint, path, what "answering" looks like)
_PROBES: dict[str, tuple[str, str, Callable[[httpx.Response], bool]]] = {
    "user-gateway": ("user", "/api/whoami", lambda r: r.status_code == 200),
    # Without a token the secure-path must refuse, with a Bearer challenge: it is up, fail-closed.
    "secure-gateway": ("secure", "/agent/status", lambda r: r.status_code == 401
                       and r.headers.get("WWW-Authenticate", "").startswith("Bearer")),
    "obs-gateway": ("obs", "/metrics", lambda r: r.status_code == 200),
}  # fmt: skip


class GcpDeployment:
    """The two-host deployment as the target of ``pytest --gcp`` (see the module docstring)."""

    is_local = False
    target = "gcp"

    def __init__(
        self,
        settings: GcpSettings,
        *,
        say: Callable[[str], None] = print,
        token_source: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        probe_timeout_s: float = 5.0,
        wait_timeout_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.say = say
        self.options = GcpOptions(
            project=settings.project,
            identity=GcpIdentity(
                settings.audience, settings.caller_email, settings.token_max_age_s
            ),
            wait_timeout_s=wait_timeout_s,
        )
        self._token_source = token_source
        self._http = httpx.Client(timeout=probe_timeout_s, trust_env=False, transport=transport)

    @classmethod
    def from_settings(
        cls, path: str | Path | None, environ: Mapping[str, str], **kwargs: Any
    ) -> GcpDeployment:
        """Load the settings (``GcpSettings.load``) and wrap them; nothing is contacted yet."""
        return cls(GcpSettings.load(path, environ), **kwargs)

    # -- what a local Stack also offers ------------------------------------------------------
    @property
    def project(self) -> str:
        return self.settings.project

    def endpoints(self) -> dict[str, str]:
        """The three paths' base URLs: user, secure, obs (there is no Vault on GCP)."""
        return dict(self.settings.endpoints)

    def url(self, name: str) -> str:
        try:
            return self.settings.endpoints[name]
        except KeyError:
            hint = " (Vault issues tokens only locally)" if name == "vault" else ""
            raise NotAvailableOnGcp(
                f"the GCP deployment {self.project} has no {name!r} endpoint{hint}; it has "
                f"{', '.join(ENDPOINT_NAMES)}. Mark the test @pytest.mark.local_only."
            ) from None

    def token_source(self) -> TokenSource:
        """ID tokens for the secure-path audience from the metadata server (or the emulator)."""
        if self._token_source is None:
            self._token_source = GceTokenSource(
                self.settings.audience, metadata_host=self.settings.metadata_host
            )
        return self._token_source

    def status(self) -> list[EndpointState]:
        """Probe the three paths over HTTP (no token needed: the secure-path must say 401)."""
        states = []
        for service, (endpoint, path, answers) in _PROBES.items():
            url = self.settings.endpoints[endpoint] + path
            try:
                response = self._http.get(url)
            except httpx.HTTPError as exc:
                states.append(EndpointState(service, url, "unreachable",
                                            f"{type(exc).__name__}: {exc}"))  # fmt: skip
                continue
            state = "answering" if answers(response) else "unexpected"
            states.append(EndpointState(service, url, state, f"HTTP {response.status_code}"))
        return states

    def wait_ready(self, timeout: float) -> list[EndpointState]:
        """Probe until all three paths answer as they should; ``ServiceNotReady`` otherwise."""
        from pytest_observastack._waits import wait_until

        try:
            return wait_until(self.status, lambda states: all(s.ready for s in states),
                              timeout=timeout, interval=1.0,
                              what=f"the paths of the GCP deployment {self.project}")  # fmt: skip
        except ObservastackError as exc:
            last = getattr(exc, "last_seen", None)
            lines = [f"  {s.service} {s.url}: {s.state} ({s.detail})" for s in last or ()
                     if isinstance(s, EndpointState) and not s.ready]  # fmt: skip
            raise ServiceNotReady(
                f"GCP deployment {self.project} ({self.settings.source}) not ready after "
                f"{timeout:.0f} s:\n" + "\n".join(lines or [str(exc)]) + "\nFrom the control "
                "host, check the SUT host's startup log (sudo journalctl -u google-startup-"
                "scripts) and the VPC firewall rules (docs/gcp.md)."
            ) from exc

    def check_identity(self) -> str:
        """Fetch a token and check that it is the expected caller's and that the secure-path
        accepts it. Returns the caller e-mail; raises ``TokenError`` saying what differs."""
        token = self.token_source().token(self.settings.audience)
        claims = jwt.decode(token, options={"verify_signature": False})
        email = claims.get("email")
        if email != self.settings.caller_email:
            raise TokenError(
                f"the metadata server gives tokens for {email!r}, but the SUT host accepts only "
                f"{self.settings.caller_email!r}: run pytest on the control host (whose service "
                "account that is), or fix caller_email / the Terraform variable "
                "allowed_caller_email"
            )
        url = self.settings.endpoints["secure"] + "/agent/status"
        response = self._http.get(url, headers={"Authorization": f"Bearer {token}"})
        if response.status_code in (401, 403):
            reason = response.headers.get("WWW-Authenticate", "")
            raise TokenError(
                f"the secure-path refused a fresh token of {email} with {response.status_code} "
                f"({reason}): is the audience {self.settings.audience!r} the one the SUT host "
                "was deployed with (Terraform variable secure_path_audience)?"
            )
        return str(email)

    def up(self) -> GcpDeployment:
        """Attach: wait until the three paths answer, then check the caller identity."""
        self.say(f"targeting GCP deployment {self.project} ({self.settings.source})")
        self.wait_ready(self.options.wait_timeout_s)
        self.say(f"secure-path accepts tokens of {self.check_identity()}")
        return self

    def down(self) -> None:
        """Nothing to tear down (tests never remove a deployment they did not create): only
        the probe client is closed."""
        self._http.close()

    close = down

    def __enter__(self) -> GcpDeployment:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    # -- what needs the local engine ---------------------------------------------------------
    def _local_only(self, what: str) -> NoReturn:
        raise NotAvailableOnGcp(
            f"{what} needs the local Docker engine and is not available against the GCP "
            f"deployment {self.project}: mark the test @pytest.mark.local_only (it is then "
            "skipped under --gcp), or run it without --gcp"
        )

    @property
    def compose(self) -> NoReturn:
        self._local_only("stack.compose")

    def exec(self, service: str, *argv: str, timeout: float = 60) -> NoReturn:
        self._local_only(f"stack.exec({service!r}, ...)")

    def logs(self, service: str, tail: int = 200) -> NoReturn:
        self._local_only(f"stack.logs({service!r})")

    def restart(self, service: str, timeout: float = 60) -> NoReturn:
        self._local_only(f"stack.restart({service!r})")

    def converge(self, **_: object) -> NoReturn:
        self._local_only("stack.converge()")

    def container(self, service: str) -> NoReturn:
        self._local_only(f"stack.container({service!r})")

    def addresses(self, service: str) -> NoReturn:
        self._local_only(f"stack.addresses({service!r})")

    def bootstrap_identity(self) -> NoReturn:
        self._local_only("stack.bootstrap_identity() (Vault)")


class _LocalStack(Protocol):
    """What ``write_sim_settings`` needs of a local ``Stack``."""

    @property
    def project(self) -> str: ...

    @property
    def options(self) -> Any: ...

    def endpoints(self) -> dict[str, str]: ...

    def status(self) -> list[Any]: ...


def write_sim_settings(stack: _LocalStack, path: str | Path) -> GcpSettings:
    """Write ``--gcp`` settings for a running local GCP simulation (``compose.gcp-sim.yaml``).

    The file's type follows ``path``'s suffix (.toml or .json). Returns the settings written.
    """
    port = next((published for state in stack.status() if state.service == SIM_METADATA_SERVICE
                 for _ip, published, target in state.publishers
                 if target == SIM_METADATA_PORT), None)  # fmt: skip
    if port is None:
        raise ServiceNotReady(
            f"stack {stack.project} publishes no {SIM_METADATA_SERVICE} port: was it started "
            "with fixtures/compose/compose.gcp-sim.yaml layered on top?"
        )
    endpoints = stack.endpoints()
    settings = GcpSettings(
        endpoints={name: endpoints[name] for name in ENDPOINT_NAMES},
        audience=stack.options.identity.audience,
        caller_email=SIM_CALLER_EMAIL,
        metadata_host=f"127.0.0.1:{port}",
        project=f"gcp-sim:{stack.project}",
        source=f"local GCP simulation, project {stack.project}",
    )
    target = Path(path)
    if target.suffix not in (".toml", ".json"):
        raise GcpSettingsError(f"write_sim_settings writes .toml or .json, not {target.name!r}")
    target.write_text(settings.to_toml() if target.suffix == ".toml" else settings.to_json())
    return settings
