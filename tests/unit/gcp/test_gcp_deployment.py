"""``GcpDeployment``: the surface tests use on a local Stack, HTTP probes, and clear refusals.

No engine and no network: the three paths are an ``httpx.MockTransport``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gcp.settings import GcpSettings
from pytest_observastack._errors import ServiceNotReady, TokenError
from pytest_observastack._gcp import (
    SIM_CALLER_EMAIL,
    GcpDeployment,
    GcpSettingsError,
    NotAvailableOnGcp,
    write_sim_settings,
)
from pytest_observastack._tokens import GceTokenSource

CALLER = "ctl@p.iam.gserviceaccount.com"
SETTINGS = GcpSettings(
    endpoints={"user": "http://sut:8080", "secure": "http://sut:8443", "obs": "http://sut:9090"},
    audience="aud-x",
    caller_email=CALLER,
    project="course",
)
Handler = Callable[[httpx.Request], httpx.Response]


def healthy(request: httpx.Request) -> httpx.Response:
    routes = {
        ("sut:8080", "/api/whoami"): httpx.Response(200, json={"pid": 7}),
        ("sut:9090", "/metrics"): httpx.Response(200, text="# metrics\n"),
    }
    if request.url.port == 8443:
        if request.headers.get("Authorization") == f"Bearer {token_for(CALLER)}":
            return httpx.Response(200, json={"master": {"pid": 7}})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return routes.get((f"{request.url.host}:{request.url.port}", request.url.path),
                      httpx.Response(404))  # fmt: skip


def token_for(email: str) -> str:
    return jwt.encode({"email": email, "aud": "aud-x", "iat": 1, "exp": 2}, "k" * 32, "HS256")


@dataclass
class FakeSource:
    email: str = CALLER
    asked: list[str | None] = field(default_factory=list)

    def token(self, audience: str | None = None) -> str:
        self.asked.append(audience)
        return token_for(self.email)

    def invalidate(self) -> None:
        pass


def deployment(handler: Handler = healthy, **kwargs: Any) -> GcpDeployment:
    kwargs.setdefault("token_source", FakeSource())
    return GcpDeployment(SETTINGS, transport=httpx.MockTransport(handler), say=lambda m: None,
                         **kwargs)  # fmt: skip


def test_the_surface_a_local_stack_also_has() -> None:
    target = deployment()
    assert target.project == "course"
    assert target.endpoints() == dict(SETTINGS.endpoints)
    assert target.url("secure") == "http://sut:8443"
    assert target.options.identity.audience == "aud-x"
    assert target.options.identity.max_age_s == 300
    assert target.options.identity.issuer == "https://accounts.google.com"
    assert (target.is_local, target.target) == (False, "gcp")


def test_from_settings_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "gcp.toml"
    path.write_text(SETTINGS.to_toml())
    target = GcpDeployment.from_settings(path, {}, say=lambda m: None)
    assert target.url("obs") == "http://sut:9090"
    with pytest.raises(GcpSettingsError, match=r"endpoints\.user is missing"):
        GcpDeployment.from_settings(None, {})


def test_the_token_source_is_the_metadata_server() -> None:
    source = GcpDeployment(SETTINGS, say=lambda m: None).token_source()
    assert isinstance(source, GceTokenSource)
    assert (source.audience, source.metadata_host) == ("aud-x", None)


def test_vault_is_not_an_endpoint_on_gcp() -> None:
    with pytest.raises(NotAvailableOnGcp) as info:
        deployment().url("vault")
    assert str(info.value) == (
        "the GCP deployment course has no 'vault' endpoint (Vault issues tokens only locally); "
        "it has user, secure, obs. Mark the test @pytest.mark.local_only."
    )


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda d: d.exec("backend", "true"), "stack.exec('backend', ...)"),
        (lambda d: d.logs("agent"), "stack.logs('agent')"),
        (lambda d: d.restart("backend"), "stack.restart('backend')"),
        (lambda d: d.converge(), "stack.converge()"),
        (lambda d: d.compose, "stack.compose"),
        (lambda d: d.container("agent"), "stack.container('agent')"),
        (lambda d: d.addresses("agent"), "stack.addresses('agent')"),
        (lambda d: d.bootstrap_identity(), "stack.bootstrap_identity() (Vault)"),
    ],
)
def test_engine_operations_say_to_mark_the_test_local_only(
    call: Callable[[GcpDeployment], object], what: str
) -> None:
    with pytest.raises(NotAvailableOnGcp) as info:
        call(deployment())
    assert str(info.value) == (
        f"{what} needs the local Docker engine and is not available against the GCP deployment "
        "course: mark the test @pytest.mark.local_only (it is then skipped under --gcp), or run "
        "it without --gcp"
    )


def test_status_probes_the_three_paths() -> None:
    states = deployment().status()
    assert [(s.service, s.ready, s.health, s.detail) for s in states] == [
        ("user-gateway", True, "healthy", "HTTP 200"),
        ("secure-gateway", True, "healthy", "HTTP 401"),
        ("obs-gateway", True, "healthy", "HTTP 200"),
    ]


def test_a_secure_path_that_answers_without_a_token_is_not_ready() -> None:
    def fail_open(request: httpx.Request) -> httpx.Response:
        if request.url.port == 8443:
            return httpx.Response(200, json={})
        return healthy(request)

    secure = deployment(fail_open).status()[1]
    assert (secure.service, secure.state, secure.ready) == ("secure-gateway", "unexpected", False)


def test_wait_ready_reports_what_it_last_saw() -> None:
    def obs_down(request: httpx.Request) -> httpx.Response:
        if request.url.port == 9090:
            raise httpx.ConnectError("Connection refused", request=request)
        return healthy(request)

    with pytest.raises(ServiceNotReady) as info:
        deployment(obs_down).wait_ready(timeout=0)
    message = str(info.value)
    assert "GCP deployment course ((given directly)) not ready after 0 s:" in message
    assert (
        "  obs-gateway http://sut:9090/metrics: unreachable (ConnectError: Connection refused)"
        in message
    )
    assert "user-gateway" not in message
    assert "firewall" in message


def test_up_checks_the_callers_identity_end_to_end() -> None:
    source = FakeSource()
    with deployment(token_source=source) as target:
        assert target.check_identity() == CALLER
    assert source.asked == ["aud-x", "aud-x"]
    target.close()  # what the plugin calls at the end; idempotent with the with-block's down()


def test_a_token_of_another_account_is_named() -> None:
    with pytest.raises(TokenError) as info:
        deployment(token_source=FakeSource("someone@p.iam.gserviceaccount.com")).up()
    assert str(info.value).startswith(
        "the metadata server gives tokens for 'someone@p.iam.gserviceaccount.com', but the SUT "
        f"host accepts only {CALLER!r}: run pytest on the control host"
    )


def test_a_refused_token_points_at_the_audience() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.port == 8443 and "Authorization" in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return healthy(request)

    with pytest.raises(TokenError, match="is the audience 'aud-x' the one the SUT host"):
        deployment(refuse).check_identity()


# -- write_sim_settings -------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeState:
    service: str
    publishers: tuple[tuple[str, int, int], ...] = ()


@dataclass
class FakeIdentity:
    audience: str = "observastack-secure-path"


@dataclass
class FakeOptions:
    identity: FakeIdentity = field(default_factory=FakeIdentity)


@dataclass
class FakeStack:
    publishes_metadata: bool = True
    project: str = "obsk-gcpsim"
    options: FakeOptions = field(default_factory=FakeOptions)

    def endpoints(self) -> dict[str, str]:
        return {"user": "http://127.0.0.1:1", "secure": "http://127.0.0.1:2",
                "obs": "http://127.0.0.1:3", "vault": "http://127.0.0.1:4"}  # fmt: skip

    def status(self) -> list[FakeState]:
        publishers = (("127.0.0.1", 4242, 8225),) if self.publishes_metadata else ()
        return [FakeState("backend"), FakeState("metadata", publishers)]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_sim_settings_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sim{suffix}"
    written = write_sim_settings(FakeStack(), path)
    loaded = GcpSettings.load(path, {})
    assert loaded.endpoints == written.endpoints == {
        "user": "http://127.0.0.1:1", "secure": "http://127.0.0.1:2", "obs": "http://127.0.0.1:3",
    }  # fmt: skip
    assert (loaded.metadata_host, loaded.caller_email, loaded.project) == (
        "127.0.0.1:4242", SIM_CALLER_EMAIL, "gcp-sim:obsk-gcpsim",
    )  # fmt: skip
    assert loaded.audience == "observastack-secure-path"


def test_sim_settings_need_the_sim_override(tmp_path: Path) -> None:
    with pytest.raises(ServiceNotReady, match="publishes no metadata port: was it started with"):
        write_sim_settings(FakeStack(publishes_metadata=False), tmp_path / "s.toml")
    with pytest.raises(GcpSettingsError, match=r"writes \.toml or \.json, not 's\.yaml'"):
        write_sim_settings(FakeStack(), tmp_path / "s.yaml")
