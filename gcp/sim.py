"""The local GCP simulation: the compose stack with its verifiers in the ``gcp`` profile.

``fixtures/compose/compose.gcp-sim.yaml`` (layered on compose.yaml) adds the metadata-server
EMULATOR (``metadata``, published on 127.0.0.1) and the JWKS relay (``jwks-relay``, as on the SUT
host), and switches the secure-gateway and the agent to the ``gcp`` validation profile: issuer
``https://accounts.google.com``, keys relayed from the emulator's certs endpoint, maximum token
age 300 s, and only ``SIM_CALLER_EMAIL`` allowed. Vault stays (unused by the verifiers), so that
tests can show its tokens are refused.

``SimulatedGcpStack`` is a ``Stack`` for that file set: its readiness check at ``up()`` waits for
an emulator token (not a Vault one) to be accepted end to end, and ``fetch_id_token`` asks the
emulator for raw tokens (other accounts, other audiences, back-dated) without google-auth.

Data in: the running stack and the emulator's published port. Data out: tokens and settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import httpx

from pytest_observastack._build import project_root
from pytest_observastack._gcp import SIM_METADATA_PORT, SIM_METADATA_SERVICE
from pytest_observastack._stack import SERVICES, ServiceState, Stack, StackOptions
from pytest_observastack._tokens import VaultTokenSource
from pytest_observastack._waits import wait_until

__all__ = ["SIM_SERVICES", "SimulatedGcpStack", "fetch_id_token", "sim_compose_file"]

SIM_SERVICES = (*SERVICES, SIM_METADATA_SERVICE, "jwks-relay")
_IDENTITY = "/computeMetadata/v1/instance/service-accounts/{account}/identity"


def sim_compose_file() -> Path:
    return project_root() / "fixtures" / "compose" / "compose.gcp-sim.yaml"


def fetch_id_token(
    metadata_url: str, audience: str, *, account: str = "default", backdate_s: int = 0
) -> str:
    """A raw ID token from the metadata server's real path (``backdate_s``: the emulator's
    test hook, 0 = off). Raises ``httpx.HTTPStatusError`` with the server's answer on refusal."""
    params: dict[str, str | int] = {"audience": audience, "format": "full"}
    if backdate_s:
        params["backdate_s"] = backdate_s
    response = httpx.get(
        metadata_url + _IDENTITY.format(account=account),
        params=params,
        headers={"Metadata-Flavor": "Google"},
        timeout=10.0,
        trust_env=False,
    )
    response.raise_for_status()
    return response.text


class SimulatedGcpStack(Stack):
    """A local stack with ``compose.gcp-sim.yaml`` layered on top (added if not given)."""

    def __init__(
        self, options: StackOptions | None = None, *, say: Callable[[str], None] = print
    ) -> None:
        options = options or StackOptions()
        sim = sim_compose_file()
        extra = tuple(Path(f).resolve() for f in options.extra_compose_files)
        if sim not in extra:
            options = replace(options, extra_compose_files=(*extra, sim))
        super().__init__(options, say=say)

    def __enter__(self) -> SimulatedGcpStack:
        super().__enter__()
        return self

    def metadata_url(self) -> str:
        """The emulator as the test runner reaches it: ``http://127.0.0.1:PORT``."""
        for state in self.status():
            if state.service == SIM_METADATA_SERVICE:
                for _ip, published, target in state.publishers:
                    if target == SIM_METADATA_PORT:
                        return f"http://127.0.0.1:{published}"
        raise LookupError(f"stack {self.project}: the metadata emulator publishes no port")

    def wait_ready(
        self, timeout: float, services: Sequence[str] = SIM_SERVICES
    ) -> list[ServiceState]:
        return super().wait_ready(timeout, services)

    def vault_token_source(self) -> VaultTokenSource:
        """Vault tokens (the local issuer): the gcp-profile verifiers must refuse them."""
        return super().token_source()

    def bootstrap_identity(self) -> None:
        """Configure Vault as usual (for the refusal tests), then wait until the secure-path
        accepts an emulator token: the verifiers have fetched the relayed key set."""
        from identity.bootstrap import bootstrap_vault

        ident = self.options.identity
        bootstrap_vault(self.url("vault"), ident.root_token, audience=ident.audience,
                        issuer=ident.issuer, username=ident.username, password=ident.password,
                        role=ident.role)  # fmt: skip
        token = fetch_id_token(self.metadata_url(), ident.audience)

        def probe() -> tuple[int, str]:
            response = httpx.get(self.url("secure") + "/agent/status", trust_env=False,
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            return response.status_code, response.headers.get("WWW-Authenticate", "")

        wait_until(probe, lambda seen: seen[0] == 200, timeout=30, interval=0.5,
                   what="the secure-path (gcp profile) to accept an emulator token")  # fmt: skip
