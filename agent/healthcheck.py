"""``python -m agent.healthcheck``: the container healthcheck (exit 0 only if the agent is bound).

Asks ``GET /agent/healthz`` on 127.0.0.1 at ``OBSERVASTACK_AGENT_PORT`` with a short timeout; the
agent answers 200 only while the Gunicorn master it bound to is alive. Standard library only, so
it starts fast and needs nothing the image does not have.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from agent.config import HEALTH_PATH, AgentConfig
from agent.errors import ConfigError

__all__ = ["main"]


def main(env: Mapping[str, str] | None = None, *, timeout: float = 2.0) -> int:
    try:
        config = AgentConfig.from_env(os.environ if env is None else env)
    except ConfigError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{config.port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
