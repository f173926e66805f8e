"""The GCP side of ObservaStack: the two-host deployment and its local simulation.

What it is for: running the control plane on Google Cloud (an orchestrator VM calling the
secure-path of a SUT VM with Google-signed ID tokens) and simulating that locally.

How data enters and leaves: on GCP, identity tokens come from the GCE metadata server and are
checked by ``identity.validation`` with the ``gcp`` profile against Google's JWKS. Locally,
``gcp.metadata_emulator`` (``python -m gcp.metadata_emulator``) emulates the metadata server's
identity endpoints and publishes the matching JWKS, so the same client and verifier code runs
unchanged.

Importing this package does nothing; import the submodule you need.
"""

from __future__ import annotations

__all__: list[str] = []
