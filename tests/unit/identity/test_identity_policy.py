"""ValidationPolicy: built from data only, validated at start, clear errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from identity import ConfigError, Decision, TokenValidator, ValidationPolicy

BASE_ENV = {
    "OBSERVASTACK_JWT_ISSUER": "http://vault:8200/v1/identity/oidc",
    "OBSERVASTACK_JWKS_URL": "http://vault:8200/v1/identity/oidc/.well-known/keys",
    "OBSERVASTACK_JWT_AUDIENCE": "https://secure-path.local",
}


def test_local_profile_defaults() -> None:
    policy = ValidationPolicy.from_env(BASE_ENV)
    assert policy.profile == "local"
    assert policy.max_lifetime_s == 300
    assert policy.max_age_s is None
    assert policy.leeway_s == 5
    assert policy.allowed_subjects == frozenset()
    assert policy.jwks_cache_s == 60
    assert policy.jwks_refetch_interval_s == 2


def test_gcp_profile_defaults_and_subjects() -> None:
    env = {
        **BASE_ENV,
        "OBSERVASTACK_JWT_PROFILE": "gcp",
        "OBSERVASTACK_JWT_ALLOWED_SUBJECTS": " orchestrator@p.iam.gserviceaccount.com , 1234 ,",
    }
    policy = ValidationPolicy.from_env(env)
    assert (policy.max_lifetime_s, policy.max_age_s) == (3600, 300)
    assert policy.allowed_subjects == {"orchestrator@p.iam.gserviceaccount.com", "1234"}


def test_all_variables_are_read() -> None:
    env = {
        **BASE_ENV,
        "OBSERVASTACK_JWT_MAX_LIFETIME_S": "120",
        "OBSERVASTACK_JWT_MAX_AGE_S": "60",
        "OBSERVASTACK_JWT_LEEWAY_S": "0",
        "OBSERVASTACK_JWKS_CACHE_S": "10",
        "OBSERVASTACK_JWKS_REFETCH_INTERVAL_S": "0.5",
        "OBSERVASTACK_JWT_MAX_TOKEN_BYTES": "4096",
    }
    policy = ValidationPolicy.from_env(env)
    assert (policy.max_lifetime_s, policy.max_age_s, policy.leeway_s) == (120, 60, 0)
    assert (policy.jwks_cache_s, policy.jwks_refetch_interval_s) == (10, 0.5)
    assert policy.max_token_bytes == 4096


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        ValidationPolicy.from_env({})
    message = str(info.value)
    for name in BASE_ENV:
        assert f"{name} is required" in message


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"OBSERVASTACK_JWT_PROFILE": "aws"}, "OBSERVASTACK_JWT_PROFILE must be one of"),
        ({"OBSERVASTACK_JWT_MAX_LIFETIME_S": "five"}, "must be an integer"),
        ({"OBSERVASTACK_JWT_MAX_LIFETIME_S": "0"}, "max_lifetime_s must be None or an integer"),
        ({"OBSERVASTACK_JWT_LEEWAY_S": "600"}, "leeway_s must be an integer in 0..60"),
        ({"OBSERVASTACK_JWKS_URL": "file:///etc/keys"}, "jwks_url must be an http(s) URL"),
        ({"OBSERVASTACK_JWKS_CACHE_S": "nan"}, "must be finite"),
        ({"OBSERVASTACK_JWKS_REFETCH_INTERVAL_S": "120"}, "shorter than jwks_cache_s"),
        (
            {"OBSERVASTACK_JWT_MAX_LIFETIME_S": "none", "OBSERVASTACK_JWT_MAX_AGE_S": "none"},
            "must be short-lived",
        ),
        ({"OBSERVASTACK_JWT_PROFILE": "gcp"}, "the gcp profile needs allowed_subjects"),
        (
            {
                "OBSERVASTACK_JWT_PROFILE": "gcp",
                "OBSERVASTACK_JWT_ALLOWED_SUBJECTS": "a@b",
                "OBSERVASTACK_JWT_MAX_AGE_S": "none",
            },
            "the gcp profile needs max_age_s",
        ),
    ],
)
def test_invalid_configuration_fails_at_start(overrides: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ValidationPolicy.from_env({**BASE_ENV, **overrides})


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="allowed_subjects must be a set of strings"):
        ValidationPolicy("i", "http://j/k", "a", allowed_subjects="alice")  # type: ignore[arg-type]
    policy = ValidationPolicy("i", "http://j/k", "a", allowed_subjects={"alice"})  # type: ignore[arg-type]
    assert policy.allowed_subjects == frozenset({"alice"})


def test_www_authenticate_is_header_safe() -> None:
    decision = Decision(False, 401, None, 'bad "quoted" \\ value\r\n', {})
    assert decision.www_authenticate() == (
        "Bearer error=\"invalid_token\", error_description=\"bad 'quoted' ' value''\""
    )
    assert Decision(True, 200, "s", "ok", {}).www_authenticate() is None


def test_each_decision_is_one_json_log_line(
    caplog: pytest.LogCaptureFixture, validator: TokenValidator, sign: Callable[..., str]
) -> None:
    token = sign()
    with caplog.at_level(logging.INFO, logger="observastack.identity"):
        validator.check_authorization(f"Bearer {token}", path="/config/limits?secret=1")
        validator.check_authorization("Bearer a.b", path="/agent/signals", method="POST")
    lines = [r for r in caplog.records if r.name == "observastack.identity"]
    assert len(lines) == 2
    allow, deny = (json.loads(r.getMessage()) for r in lines)
    assert allow == {
        "event": "authz_decision",
        "outcome": "allow",
        "status": 200,
        "reason": "ok",
        "subject": "6f1c1b0e-entity",
        "email": None,
        "audience": "https://secure-path.observastack.test",
        "method": None,
        "path": "/config/limits",
    }
    assert deny["outcome"] == "deny"
    assert deny["status"] == 401
    assert (deny["method"], deny["path"]) == ("POST", "/agent/signals")
    assert lines[0].levelno == logging.INFO
    assert lines[1].levelno == logging.WARNING
    assert token.split(".")[2] not in caplog.text
