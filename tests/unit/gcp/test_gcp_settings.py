"""The ``--gcp`` settings: TOML, JSON, .env, the environment on top, errors that say what to do."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gcp.settings import GcpSettings, GcpSettingsError
from pytest_observastack._errors import ObservastackError

TOML = """\
project = "course-2027"
audience = "observastack-secure-path"
caller_email = "observastack-control-host@p.iam.gserviceaccount.com"

[endpoints]
user = "http://10.42.0.10:8080"
secure = "http://10.42.0.10:8443/"
obs = "http://10.42.0.10:9090"
"""
FULL_ENV = {
    "OBSERVASTACK_GCP_USER_URL": "http://10.0.0.2:8080",
    "OBSERVASTACK_GCP_SECURE_URL": "http://10.0.0.2:8443",
    "OBSERVASTACK_GCP_OBS_URL": "http://10.0.0.2:9090",
    "OBSERVASTACK_GCP_AUDIENCE": "aud",
    "OBSERVASTACK_GCP_CALLER_EMAIL": "ctl@p.iam.gserviceaccount.com",
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_file(tmp_path: Path) -> None:
    settings = GcpSettings.load(write(tmp_path, "gcp.toml", TOML), {})
    assert settings.endpoints == {"user": "http://10.42.0.10:8080",
                                  "secure": "http://10.42.0.10:8443",
                                  "obs": "http://10.42.0.10:9090"}  # fmt: skip
    assert settings.audience == "observastack-secure-path"
    assert settings.caller_email == "observastack-control-host@p.iam.gserviceaccount.com"
    assert (settings.project, settings.metadata_host, settings.token_max_age_s) == (
        "course-2027", None, 300,
    )  # fmt: skip


def test_json_file_and_the_round_trips(tmp_path: Path) -> None:
    first = GcpSettings.load(write(tmp_path, "gcp.toml", TOML), {})
    from_json = GcpSettings.load(write(tmp_path, "gcp.json", first.to_json()), {})
    from_toml = GcpSettings.load(write(tmp_path, "again.toml", first.to_toml()), {})
    for settings in (from_json, from_toml):
        assert (settings.endpoints, settings.audience, settings.caller_email, settings.project) == (
            first.endpoints, first.audience, first.caller_email, first.project,
        )  # fmt: skip


def test_env_file(tmp_path: Path) -> None:
    lines = ["# comment", "", *(f"{k}={v}" for k, v in FULL_ENV.items()),
             "export OBSERVASTACK_GCP_METADATA_HOST='127.0.0.1:8225'"]  # fmt: skip
    settings = GcpSettings.load(write(tmp_path, "gcp.env", "\n".join(lines)), {})
    assert settings.metadata_host == "127.0.0.1:8225"
    assert settings.project == "gcp:10.0.0.2"  # derived display name


def test_environment_alone_and_over_a_file(tmp_path: Path) -> None:
    assert GcpSettings.load(None, FULL_ENV).audience == "aud"
    path = write(tmp_path, "gcp.toml", TOML)
    settings = GcpSettings.load(path, {"OBSERVASTACK_GCP_AUDIENCE": "override"})
    assert settings.audience == "override"
    assert settings.source == f"{path} + OBSERVASTACK_GCP_* environment"


def test_settings_path_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "gcp.toml", TOML)
    assert GcpSettings.load(None, {"OBSERVASTACK_GCP_SETTINGS": str(path)}).project == "course-2027"


def test_every_missing_field_is_named_with_where_to_set_it() -> None:
    with pytest.raises(GcpSettingsError) as info:
        GcpSettings.load(None, {})
    message = str(info.value)
    assert message.startswith("GCP settings from nothing: no settings file and no ")
    for key, env in (("endpoints.user", "OBSERVASTACK_GCP_USER_URL"),
                     ("endpoints.secure", "OBSERVASTACK_GCP_SECURE_URL"),
                     ("endpoints.obs", "OBSERVASTACK_GCP_OBS_URL"),
                     ("audience", "OBSERVASTACK_GCP_AUDIENCE"),
                     ("caller_email", "OBSERVASTACK_GCP_CALLER_EMAIL")):  # fmt: skip
        assert f"  - {key} is missing (" in message
        assert env in message
    assert "metadata_host is missing" not in message  # optional
    assert "terraform -chdir=gcp/terraform output -raw gcp_settings" in message
    assert isinstance(info.value, ObservastackError)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"OBSERVASTACK_GCP_SECURE_URL": "10.0.0.2:8443"}, "endpoints.secure must be http(s)"),
        ({"OBSERVASTACK_GCP_OBS_URL": "http://h:9090/metrics"}, "endpoints.obs must be http(s)"),
        ({"OBSERVASTACK_GCP_AUDIENCE": "a,b"}, "audience must be one string"),
        ({"OBSERVASTACK_GCP_CALLER_EMAIL": "nobody"}, "caller_email must be one e-mail"),
        ({"OBSERVASTACK_GCP_METADATA_HOST": "http://x"}, "metadata_host must be HOST:PORT"),
        ({"OBSERVASTACK_GCP_TOKEN_MAX_AGE_S": "7200"}, "token_max_age_s must be an integer"),
    ],
)
def test_invalid_values_are_named(override: dict[str, str], expected: str) -> None:
    with pytest.raises(GcpSettingsError, match=re.escape(expected)):
        GcpSettings.load(None, {**FULL_ENV, **override})


def test_unknown_keys_fail_loudly(tmp_path: Path) -> None:
    text = TOML.replace('audience = "', 'audiance = "x"\naudience = "')
    with pytest.raises(GcpSettingsError, match=r"unknown settings \['audiance'\]"):
        GcpSettings.load(write(tmp_path, "gcp.toml", text), {})
    data = {"endpoints": {"user": "http://h", "admin": "http://h"}}
    with pytest.raises(GcpSettingsError, match=r"unknown settings \['endpoints.admin'\]"):
        GcpSettings.load(write(tmp_path, "gcp.json", json.dumps(data)), {})


def test_unreadable_unparsable_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(GcpSettingsError, match=r"cannot read the GCP settings .*missing\.toml:"):
        GcpSettings.load(tmp_path / "missing.toml", {})
    with pytest.raises(GcpSettingsError, match="does not parse"):
        GcpSettings.load(write(tmp_path, "bad.toml", "audience = "), {})
    with pytest.raises(GcpSettingsError, match=r"must end in .toml, .json or .env, not '.yaml'"):
        GcpSettings.load(write(tmp_path, "gcp.yaml", "a: 1"), {})
    with pytest.raises(GcpSettingsError, match=r"gcp.env:1: expected one of"):
        GcpSettings.load(write(tmp_path, "gcp.env", "AUDIENCE=x"), {})
