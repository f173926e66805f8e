"""``python -m gateway --conf PATH [--watch NAME ...] [--authz]``: run one gateway."""

from __future__ import annotations

import argparse

from gateway.supervisor import GatewaySpec, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--conf", required=True, help="nginx configuration file")
    parser.add_argument("--watch", action="append", default=[], help="upstream name to re-resolve")
    parser.add_argument("--authz", action="store_true", help="also run the token-check service")
    args = parser.parse_args(argv)
    return run(GatewaySpec(nginx_conf=args.conf, watch=args.watch, with_authz=args.authz))


if __name__ == "__main__":
    raise SystemExit(main())
