"""``python -m identity.vault_standin``: run the Vault stand-in in the foreground."""

from __future__ import annotations

from identity.vault_standin._server import main

if __name__ == "__main__":
    raise SystemExit(main())
