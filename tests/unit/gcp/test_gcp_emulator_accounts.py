"""The metadata emulator's two additions for the GCP simulation's refusal tests: further service
accounts signed with the same key, and the (off by default) back-dating test hook."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest

from gcp.metadata_emulator import (
    GOOGLE_ISSUER,
    ConfigError,
    EmulatorSettings,
    MetadataEmulator,
    MetadataEmulatorServer,
)
from identity import TokenValidator, ValidationPolicy

FLAVOR = {"Metadata-Flavor": "Google"}
SA = "/computeMetadata/v1/instance/service-accounts/"
OTHER = "student@sim.iam.gserviceaccount.com"


def claims_of(token: bytes | str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


@pytest.fixture(scope="module")
def emulator() -> MetadataEmulator:
    return MetadataEmulator(EmulatorSettings(extra_accounts=(OTHER,), allow_backdate=True))


def test_extra_accounts_are_listed_and_mint_their_own_tokens(emulator: MetadataEmulator) -> None:
    email = emulator.settings.email
    assert emulator.handle("GET", SA, FLAVOR).body.decode() == f"default/\n{email}/\n{OTHER}/\n"
    info = json.loads(emulator.handle("GET", SA + f"{OTHER}/?recursive=true", FLAVOR).body)
    assert (info["email"], info["aliases"]) == (OTHER, [])
    reply = emulator.handle("GET", SA + f"{OTHER}/identity?audience=aud", FLAVOR)
    claims = claims_of(reply.body)
    assert claims["email"] == OTHER
    assert claims["sub"] != emulator.unique_id
    assert jwt.get_unverified_header(reply.body)["kid"] == emulator.kid  # one key for all
    assert emulator.handle("GET", SA + "nobody@x/identity?audience=aud", FLAVOR).status == 404


def test_backdating_moves_iat_and_exp(emulator: MetadataEmulator) -> None:
    now = claims_of(emulator.handle("GET", SA + "default/identity?audience=a", FLAVOR).body)
    old = claims_of(
        emulator.handle("GET", SA + "default/identity?audience=a&backdate_s=600", FLAVOR).body
    )
    assert isinstance(now["iat"], int)
    assert isinstance(old["iat"], int)
    assert 599 <= now["iat"] - old["iat"] <= 601
    assert old["exp"] == old["iat"] + 3600
    bad = emulator.handle("GET", SA + "default/identity?audience=a&backdate_s=-5", FLAVOR)
    assert bad.status == 400


def test_backdating_is_off_unless_asked_for() -> None:
    plain = MetadataEmulator()
    reply = plain.handle("GET", SA + "default/identity?audience=a&backdate_s=600", FLAVOR)
    assert reply.status == 400
    assert b"METADATA_EMULATOR_ALLOW_BACKDATE=1" in reply.body


def test_settings_from_env() -> None:
    settings = EmulatorSettings.from_env({"METADATA_EMULATOR_EXTRA_ACCOUNTS": f" {OTHER} ,",
                                          "METADATA_EMULATOR_ALLOW_BACKDATE": "1"})  # fmt: skip
    assert (settings.extra_accounts, settings.allow_backdate) == ((OTHER,), True)
    assert EmulatorSettings.from_env({}).allow_backdate is False
    with pytest.raises(ConfigError, match="EXTRA_ACCOUNTS must list e-mails"):
        EmulatorSettings.from_env({"METADATA_EMULATOR_EXTRA_ACCOUNTS": "default"})
    with pytest.raises(ConfigError, match="ALLOW_BACKDATE must be 0 or 1"):
        EmulatorSettings.from_env({"METADATA_EMULATOR_ALLOW_BACKDATE": "maybe"})


@pytest.fixture(scope="module")
def server() -> Iterator[MetadataEmulatorServer]:
    settings = EmulatorSettings(port=0, extra_accounts=(OTHER,), allow_backdate=True)
    with MetadataEmulatorServer(settings) as running:
        yield running


@pytest.mark.parametrize(
    ("account", "backdate_s", "status", "reason"),
    [
        ("default", 0, 200, "ok"),
        ("default", 240, 200, "ok"),
        ("default", 400, 401, "token too old"),
        (OTHER, 0, 403, "subject not allowed"),
    ],
)
def test_the_gcp_profile_refuses_other_accounts_and_old_tokens(
    server: MetadataEmulatorServer, account: str, backdate_s: int, status: int, reason: str
) -> None:
    emulator = server.emulator
    policy = ValidationPolicy(
        issuer=GOOGLE_ISSUER, jwks_url=server.certs_url, audience="aud", profile="gcp",
        max_lifetime_s=3600, max_age_s=300, allowed_subjects=frozenset({emulator.settings.email}),
    )  # fmt: skip
    validator = TokenValidator(policy)
    path = SA + f"{account}/identity?audience=aud&backdate_s={backdate_s}"
    try:
        decision = validator.validate(emulator.handle("GET", path, FLAVOR).body.decode())
    finally:
        validator.close()
    assert (decision.status, reason in decision.reason) == (status, True), decision
