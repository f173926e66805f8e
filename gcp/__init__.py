"""The GCP side of ObservaStack: the two-host deployment and its local simulation (docs/gcp.md).

What it is for: running the control plane on Google Cloud (a control host calling the secure-path
of a SUT host with Google-signed ID tokens) and simulating that locally.

- ``gcp/terraform/``: the VPC, firewall (the reachability contract), service accounts and the two
  hosts, as Terraform (never applied from here).
- ``gcp/compose.sut-host.yaml``: the compose override the SUT host runs (no vault, no loadgen,
  verifiers in the ``gcp`` validation profile).
- ``gcp.jwks_relay`` (``python -m gcp.jwks_relay``): Google's key set for verifiers on internal
  networks.
- ``gcp.metadata_emulator`` (``python -m gcp.metadata_emulator``): an EMULATOR of the GCE
  metadata server's identity endpoints, plus a JWKS standing in for Google's certs URL.
- ``gcp.settings``: the ``pytest --gcp`` settings file; ``gcp.sim``: the local simulation's stack.

How data enters and leaves: on GCP, identity tokens come from the metadata server and are checked
by ``identity.validation`` with the ``gcp`` profile against Google's JWKS (relayed). Locally the
emulator stands in for both, so the same client and verifier code runs unchanged.

Importing this package does nothing; import the submodule you need.
"""

from __future__ import annotations

__all__: list[str] = []
