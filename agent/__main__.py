"""``python -m agent``: read the settings, bind to the Gunicorn master, watch it, serve the API.

Exit codes: 0 after a normal shutdown (SIGTERM/SIGINT to the agent), 2 for bad settings, 3 when the
bound master went away (shared fate, see ``agent.watch``), 4 when no master appeared in time.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping

from agent.api import TokenChecker, create_app
from agent.audit import configure_logging
from agent.config import AgentConfig
from agent.discovery import Discovery
from agent.errors import ConfigError, MasterNotFound
from agent.reconcile import ReconcileSettings, for_core
from agent.runtime import AgentCore
from agent.watch import Watcher

__all__ = ["EXIT_BAD_CONFIG", "EXIT_NO_MASTER", "main"]

EXIT_BAD_CONFIG = 2
EXIT_NO_MASTER = 4
log = logging.getLogger("agent")

ValidatorFactory = Callable[[Mapping[str, str]], TokenChecker]


def token_validator(env: Mapping[str, str]) -> TokenChecker:
    """The shared validation module, configured from the same variables as the secure-gateway."""
    from identity.validation import TokenValidator, ValidationPolicy

    validator: TokenChecker = TokenValidator(ValidationPolicy.from_env(env))
    return validator


def main(
    env: Mapping[str, str] | None = None,
    *,
    make_validator: ValidatorFactory = token_validator,
    serve: bool = True,
) -> int:
    """Run the agent; return the exit code (``serve=False`` stops before serving, for tests)."""
    env = os.environ if env is None else env
    try:
        config = AgentConfig.from_env(env)
        reconcile = ReconcileSettings.from_env(env)
    except ConfigError as exc:
        print(f"observastack agent: bad configuration: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG
    configure_logging(config.log_level)
    try:
        validator = make_validator(env)
    except Exception as exc:  # the identity module's own errors: report them, do not serve
        log.error("token validation is not configured: %s", exc, extra={"event": "bad_config"})
        return EXIT_BAD_CONFIG
    discovery = Discovery(config.master_title)
    log.info(
        "looking for the Gunicorn master",
        extra={"event": "discovering", "timeout_s": config.discovery_timeout_s},
    )
    try:
        core = AgentCore.bind(
            discovery, timeout=config.discovery_timeout_s, history_size=config.history_size
        )
    except MasterNotFound as exc:
        log.error(str(exc), extra={"event": "no_master"})
        return EXIT_NO_MASTER
    log.info(
        "bound to the Gunicorn master",
        extra={
            "event": "bound",
            "master_pid": core.master.pid,
            "master_create_time": core.master.create_time,
            "title": core.master_title,
            "generation": core.generation,
        },
    )
    if not serve:
        return 0
    watcher = Watcher(discovery, core.master, interval=config.watch_interval_s)
    watcher.start()
    if reconcile.desired_file:
        core.reconciler = reconciler = for_core(core, reconcile)
        reconciler.start(config.watch_interval_s)
    app = create_app(core, validator)
    app.run(
        host=config.host,
        port=config.port,
        single_process=True,
        access_log=False,
        motd=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
