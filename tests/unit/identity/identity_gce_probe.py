"""Run GceTokenSource in a fresh interpreter, where google-auth has not been imported yet.

Usage: python identity_gce_probe.py contract HOST:PORT AUDIENCE EMAIL
       python identity_gce_probe.py imported-earlier HOST:PORT
       python identity_gce_probe.py env-conflict HOST:PORT
Prints one line starting with OK or ERROR; the exit code is 0 only for OK.
"""

from __future__ import annotations

import importlib
import os
import sys


def main(argv: list[str]) -> int:
    mode, host_port = argv[0], argv[1]
    from pytest_observastack._errors import TokenError
    from pytest_observastack._tokens import GceTokenSource

    if mode == "contract":
        from identity_contract import check_token_source_contract

        from identity import TokenValidator, ValidationPolicy

        audience, email = argv[2], argv[3]
        source = GceTokenSource(audience, metadata_host=host_port)
        policy = ValidationPolicy(
            issuer="https://accounts.google.com",
            jwks_url=f"http://{host_port}/oauth2/v3/certs",
            audience=audience,
            profile="gcp",
            max_lifetime_s=3600,
            max_age_s=300,
            allowed_subjects=frozenset({email}),
        )
        validator = TokenValidator(policy)
        try:
            check_token_source_contract(source, validator, audience)
        finally:
            validator.close()
        print("OK contract")
        return 0
    if mode == "imported-earlier":
        os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
        importlib.import_module("google.auth.compute_engine._metadata")
        del os.environ["GCE_METADATA_HOST"]
    elif mode == "env-conflict":
        os.environ["GCE_METADATA_IP"] = "10.0.0.1:80"
    try:
        GceTokenSource("aud", metadata_host=host_port)
    except TokenError as exc:
        print(f"ERROR {exc}")
        return 1
    print("OK no error")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
