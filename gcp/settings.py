"""The ``--gcp`` settings: where the two-host deployment is and who may call its secure-path.

Read by ``pytest_observastack._gcp.GcpDeployment`` on the control host (or wherever ``pytest
--gcp`` runs); written by Terraform (``terraform output -raw gcp_settings``) and, for the local
simulation, by ``pytest_observastack._gcp.write_sim_settings``.

Data in: one file, TOML, JSON (same shape) or ``.env`` (``NAME=VALUE`` lines of the environment
variable names below), and ``OBSERVASTACK_GCP_*`` environment variables, which win over the file.
``OBSERVASTACK_GCP_SETTINGS`` names the file when no path is given. Data out: a validated,
frozen ``GcpSettings``, or one ``GcpSettingsError`` naming every missing or invalid field, the
file key and the environment variable that would set it::

    project = "observastack-gcp"                # optional display name
    audience = "observastack-secure-path"       # the secure-path audience (Terraform variable)
    caller_email = "observastack-control@PROJECT.iam.gserviceaccount.com"
    metadata_host = "127.0.0.1:8225"            # optional: the metadata EMULATOR; unset on GCP
    token_max_age_s = 300                       # optional: the verifiers' maximum token age

    [endpoints]
    user = "http://10.42.0.10:8080"
    secure = "http://10.42.0.10:8443"
    obs = "http://10.42.0.10:9090"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_observastack._errors import ObservastackError

__all__ = ["ENDPOINT_NAMES", "FIELDS", "SETTINGS_ENV", "GcpSettings", "GcpSettingsError"]

SETTINGS_ENV = "OBSERVASTACK_GCP_SETTINGS"
# setting -> (environment variable, required, what it is)
FIELDS: dict[str, tuple[str, bool, str]] = {
    "endpoints.user": ("OBSERVASTACK_GCP_USER_URL", True, "user-path URL, http://SUT:8080"),
    "endpoints.secure": ("OBSERVASTACK_GCP_SECURE_URL", True, "secure-path URL, http://SUT:8443"),
    "endpoints.obs": ("OBSERVASTACK_GCP_OBS_URL", True, "obs-path URL, http://SUT:9090"),
    "audience": ("OBSERVASTACK_GCP_AUDIENCE", True, "the secure-path audience"),
    "caller_email": ("OBSERVASTACK_GCP_CALLER_EMAIL", True, "the control host's account e-mail"),
    "metadata_host": ("OBSERVASTACK_GCP_METADATA_HOST", False, "host:port of an emulator"),
    "project": ("OBSERVASTACK_GCP_PROJECT", False, "a display name"),
    "token_max_age_s": ("OBSERVASTACK_GCP_TOKEN_MAX_AGE_S", False, "the verifiers' max age"),
}
ENDPOINT_NAMES = ("user", "secure", "obs")


class GcpSettingsError(ObservastackError):
    """The ``--gcp`` settings are missing, incomplete or invalid."""


@dataclass(frozen=True)
class GcpSettings:
    """Where the two-host deployment is and who may call its secure-path."""

    endpoints: Mapping[str, str]
    audience: str
    caller_email: str
    metadata_host: str | None = None
    project: str = ""
    token_max_age_s: int = 300
    source: str = "(given directly)"

    @classmethod
    def load(cls, path: str | Path | None, environ: Mapping[str, str]) -> GcpSettings:
        """Read ``path`` (or ``$OBSERVASTACK_GCP_SETTINGS``), then the environment on top."""
        path = path or environ.get(SETTINGS_ENV) or None
        values: dict[str, str] = {}
        sources = []
        if path is not None:
            values.update(_read_file(Path(path)))
            sources.append(str(path))
        overrides = {key: environ[env].strip() for key, (env, _, _) in FIELDS.items()
                     if environ.get(env, "").strip()}  # fmt: skip
        if overrides:
            sources.append("OBSERVASTACK_GCP_* environment")
        values.update(overrides)
        source = " + ".join(sources) or "nothing: no settings file and no OBSERVASTACK_GCP_*"
        return _validate(values, source)

    def to_toml(self) -> str:
        lines = [f"# ObservaStack --gcp settings ({self.source})"]
        for key in ("project", "audience", "caller_email", "metadata_host"):
            value = getattr(self, key)
            if value:
                lines.append(f"{key} = {json.dumps(value)}")
        lines += [f"token_max_age_s = {self.token_max_age_s}", "", "[endpoints]"]
        lines += [f"{name} = {json.dumps(self.endpoints[name])}" for name in ENDPOINT_NAMES]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        data: dict[str, Any] = {"endpoints": dict(self.endpoints), "audience": self.audience,
                                "caller_email": self.caller_email, "project": self.project,
                                "token_max_age_s": self.token_max_age_s}  # fmt: skip
        if self.metadata_host:
            data["metadata_host"] = self.metadata_host
        return json.dumps(data, indent=2) + "\n"


def _read_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GcpSettingsError(
            f"cannot read the GCP settings file {path}: {exc.strerror or exc}; create it with "
            "`terraform -chdir=gcp/terraform output -raw gcp_settings > FILE` (see docs/gcp.md)"
        ) from exc
    try:
        if path.suffix == ".toml":
            return _flatten(tomllib.loads(text), path)
        if path.suffix == ".json":
            return _flatten(json.loads(text), path)
        if path.suffix == ".env" or path.name.endswith(".env"):
            return _from_env_lines(text, path)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise GcpSettingsError(f"the GCP settings file {path} does not parse: {exc}") from exc
    raise GcpSettingsError(
        f"the GCP settings file {path} must end in .toml, .json or .env, not {path.suffix!r}"
    )


def _flatten(data: object, path: Path) -> dict[str, str]:
    if not isinstance(data, dict):
        raise GcpSettingsError(f"the GCP settings file {path} must hold a table / object")
    flat: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in data.items():
        if key == "endpoints" and isinstance(value, dict):
            for name, url in value.items():
                flat[f"endpoints.{name}"] = str(url)
                if f"endpoints.{name}" not in FIELDS:
                    unknown.append(f"endpoints.{name}")
        elif key in FIELDS and not isinstance(value, dict | list):
            flat[key] = str(value)
        else:
            unknown.append(str(key))
    if unknown:
        raise GcpSettingsError(
            f"the GCP settings file {path} has unknown settings {sorted(unknown)}; known: "
            f"{', '.join(FIELDS)}"
        )
    return flat


def _from_env_lines(text: str, path: Path) -> dict[str, str]:
    by_env = {env: key for key, (env, _, _) in FIELDS.items()}
    flat: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or name.strip() not in by_env:
            raise GcpSettingsError(
                f"{path}:{number}: expected one of {', '.join(by_env)} as NAME=VALUE, got {line!r}"
            )
        flat[by_env[name.strip()]] = value.strip().strip("'\"")
    return flat


def _validate(values: Mapping[str, str], source: str) -> GcpSettings:
    problems = []
    for key, (env, required, what) in FIELDS.items():
        if required and not values.get(key):
            problems.append(f"{key} is missing ({what}): set it in the file or {env}")
    endpoints: dict[str, str] = {}
    for name in ENDPOINT_NAMES:
        url = values.get(f"endpoints.{name}", "")
        parts = urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.hostname
                    or parts.path not in ("", "/") or parts.query):  # fmt: skip
            problems.append(f"endpoints.{name} must be http(s)://HOST[:PORT], got {url!r}")
        endpoints[name] = url.rstrip("/")
    audience = values.get("audience", "")
    if audience and (audience != audience.strip() or "," in audience or " " in audience):
        problems.append(f"audience must be one string without spaces or commas, got {audience!r}")
    email = values.get("caller_email", "")
    if email and (email.count("@") != 1 or " " in email or "," in email):
        problems.append(f"caller_email must be one e-mail address, got {email!r}")
    metadata_host = values.get("metadata_host") or None
    if metadata_host is not None:
        host, _, port = metadata_host.rpartition(":")
        if not host or not port.isdigit() or "/" in metadata_host:
            problems.append(f"metadata_host must be HOST:PORT, got {metadata_host!r}")
    max_age = values.get("token_max_age_s", "300")
    if not max_age.isdigit() or not 1 <= int(max_age) <= 3600:
        problems.append(f"token_max_age_s must be an integer in 1..3600, got {max_age!r}")
    if problems:
        raise GcpSettingsError(
            f"GCP settings from {source} are incomplete or invalid:\n  - "
            + "\n  - ".join(problems)
            + "\n`terraform -chdir=gcp/terraform output -raw gcp_settings` prints a complete "
            "file (docs/gcp.md)."
        )
    project = values.get("project") or f"gcp:{urlsplit(endpoints['secure']).hostname}"
    return GcpSettings(endpoints=endpoints, audience=audience, caller_email=email,
                       metadata_host=metadata_host, project=project,
                       token_max_age_s=int(max_age), source=source)  # fmt: skip
