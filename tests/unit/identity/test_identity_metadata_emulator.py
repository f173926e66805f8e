"""The GCE metadata-server emulator: real paths and headers, Google-shaped tokens, a JWKS."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from identity_testkit import wait_until

from gcp.metadata_emulator import (
    GOOGLE_ISSUER,
    EmulatorSettings,
    MetadataEmulator,
    MetadataEmulatorServer,
)
from identity import TokenValidator, ValidationPolicy

REPO = Path(__file__).resolve().parents[3]
FLAVOR = {"Metadata-Flavor": "Google"}
SA = "/computeMetadata/v1/instance/service-accounts/"
AUDIENCE = "https://secure-path.sut.example"


@pytest.fixture(scope="module")
def emulator() -> MetadataEmulator:
    return MetadataEmulator(EmulatorSettings(port=0))


@pytest.fixture(scope="module")
def server() -> Iterator[MetadataEmulatorServer]:
    with MetadataEmulatorServer() as running:
        yield running


def test_requests_without_the_flavor_header_are_refused(emulator: MetadataEmulator) -> None:
    for path in ("/", SA, SA + f"default/identity?audience={AUDIENCE}"):
        reply = emulator.handle("GET", path, {})
        assert reply.status == 403
        assert b"Metadata-Flavor" in reply.body


def test_forwarded_requests_are_refused(emulator: MetadataEmulator) -> None:
    reply = emulator.handle("GET", SA, {**FLAVOR, "X-Forwarded-For": "10.0.0.1"})
    assert reply.status == 403


def test_listing_and_recursive_json(emulator: MetadataEmulator) -> None:
    email = emulator.settings.email
    assert emulator.handle("GET", SA, FLAVOR).body.decode() == f"default/\n{email}/\n"
    reply = emulator.handle("GET", SA + "default/?recursive=true", FLAVOR)
    assert reply.content_type == "application/json"
    info = json.loads(reply.body)
    assert info["email"] == email
    assert info["aliases"] == ["default"]
    assert emulator.handle("GET", SA + f"{email}/email", FLAVOR).body.decode() == email


def test_identity_needs_an_audience(emulator: MetadataEmulator) -> None:
    assert emulator.handle("GET", SA + "default/identity", FLAVOR).status == 400


def test_identity_token_is_shaped_like_googles(emulator: MetadataEmulator) -> None:
    reply = emulator.handle("GET", SA + f"default/identity?audience={AUDIENCE}&format=full", FLAVOR)
    assert reply.status == 200
    token = reply.body.decode()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert len(header["kid"]) == 40
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == GOOGLE_ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["azp"]
    assert claims["sub"].isdigit()
    assert len(claims["sub"]) == 21
    assert claims["email"] == emulator.settings.email
    assert claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["google"]["compute_engine"]["project_id"] == "observastack-sim"
    standard = emulator.handle("GET", SA + f"default/identity?audience={AUDIENCE}", FLAVOR)
    assert "google" not in jwt.decode(standard.body, options={"verify_signature": False})


def test_over_http_with_flavor_on_responses(server: MetadataEmulatorServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        ping = client.get("/", headers=FLAVOR)
        assert (ping.status_code, ping.headers["Metadata-Flavor"]) == (200, "Google")
        assert client.get(SA).status_code == 403
        certs = client.get("/oauth2/v3/certs")  # Google's certs URL needs no flavor header
        assert certs.status_code == 200
        assert certs.headers["Content-Type"] == "application/json"
        assert [key["kid"] for key in certs.json()["keys"]] == [server.emulator.kid]


@pytest.mark.parametrize(
    ("allowed", "status"), [("email", 200), ("sub", 200), ("other@x.iam", 403)]
)
def test_gcp_profile_validates_emulator_tokens(
    server: MetadataEmulatorServer, allowed: str, status: int
) -> None:
    emulator = server.emulator
    subject = {"email": emulator.settings.email, "sub": emulator.unique_id}.get(allowed, allowed)
    policy = ValidationPolicy(
        issuer=GOOGLE_ISSUER,
        jwks_url=server.certs_url,
        audience=AUDIENCE,
        profile="gcp",
        max_lifetime_s=3600,
        max_age_s=300,
        allowed_subjects=frozenset({subject}),
    )
    validator = TokenValidator(policy)
    try:
        token = emulator.mint_id_token(AUDIENCE)
        assert validator.validate(token).status == status
        assert validator.validate(emulator.mint_id_token("https://other")).status == 401
    finally:
        validator.close()


def test_settings_from_env() -> None:
    settings = EmulatorSettings.from_env({"METADATA_EMULATOR_PORT": "9999"})
    assert (settings.host, settings.port, settings.token_lifetime_s) == ("127.0.0.1", 9999, 3600)
    with pytest.raises(ValueError, match="METADATA_EMULATOR_EMAIL"):
        EmulatorSettings.from_env({"METADATA_EMULATOR_EMAIL": "nobody"})


def test_module_runs_and_says_it_is_an_emulator(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "METADATA_EMULATOR_PORT": str(port)}
    log_path = tmp_path / "emulator.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gcp.metadata_emulator"], env=env, stdout=log, stderr=log
        )
        try:

            def pinged() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/", headers=FLAVOR)
                except httpx.HTTPError:
                    return False
                return bool(response.headers.get("Metadata-Flavor") == "Google")

            wait_until(pinged, timeout=20, what="the emulator's ping")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    assert "EMULATOR" in log_path.read_text()
