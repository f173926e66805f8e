"""The ``observastack`` command line, for instructors, operators and CI.

Verbs: build, up, down, status, endpoints, logs, converge, token, signal, agent status,
config get|set, fault add|list|clear, flag set|list, doctor.
Every verb talks to one compose project (``--project``, default ``observastack``); errors print
what happened and what to do, and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict

import httpx

from pytest_observastack._agent import AgentClient
from pytest_observastack._build import BuildPlan, build_images, default_image
from pytest_observastack._cli_control import add_control_verbs
from pytest_observastack._compose import docker, engine_problem
from pytest_observastack._errors import ObservastackError
from pytest_observastack._forge import print_token
from pytest_observastack._stack import Stack, StackOptions
from pytest_observastack._tokens import RefreshingAuth

DEFAULT_PROJECT = "observastack"


def _say(message: str) -> None:
    print(f"observastack: {message}", file=sys.stderr, flush=True)


def _stack(args: argparse.Namespace, *, build: bool = False) -> Stack:
    stack = Stack(
        StackOptions(project=args.project, build=build, vault=getattr(args, "vault", "auto")),
        say=_say,
    )
    stack._prepare()
    return stack


def cmd_build(args: argparse.Namespace) -> int:
    offline = {"auto": None, "yes": True, "no": False}[args.offline]
    build_images(BuildPlan(image=args.image, offline=offline), say=_say)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    options = StackOptions(project=args.project, build=not args.no_build, vault=args.vault,
                           keep=True, wait_timeout_s=args.timeout)  # fmt: skip
    stack = Stack(options, say=_say).up()
    print(json.dumps(stack.endpoints(), indent=2))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _stack(args).down()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    states = _stack(args).status()
    if args.json:
        print(json.dumps([asdict(s) | {"ready": s.ready} for s in states], indent=2))
    else:
        for s in states:
            print(f"{s.service:15} {s.state:10} {s.health or '-':10} "
                  f"{'ready' if s.ready else 'NOT READY'}")  # fmt: skip
    return 0 if states and all(s.ready for s in states) else 1


def cmd_endpoints(args: argparse.Namespace) -> int:
    endpoints = _stack(args).endpoints()
    if args.json:
        print(json.dumps(endpoints, indent=2))
    else:
        for name, url in endpoints.items():
            print(f"{name:7} {url}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    print(_stack(args).logs(args.service, tail=args.tail), end="")
    return 0


def cmd_converge(args: argparse.Namespace) -> int:
    stack = _stack(args)
    started = stack.converge()
    stack.wait_ready(args.timeout)
    _say(f"converged; started: {', '.join(started) or 'nothing'}")
    return 0


@contextmanager
def _agent(args: argparse.Namespace) -> Iterator[AgentClient]:
    stack = _stack(args)
    source = stack.token_source()
    try:
        with (
            httpx.Client(base_url=stack.url("secure"), auth=RefreshingAuth(source), timeout=60,
                         trust_env=False) as secure,
            httpx.Client(base_url=stack.url("user"), timeout=30, trust_env=False) as user,
        ):  # fmt: skip
            yield AgentClient(secure, user)
    finally:
        source.close()


def cmd_token(args: argparse.Namespace) -> int:
    print_token(_stack(args), args.audience)
    return 0


_VERIFIED = {"HUP": "reload", "TERM": "terminate", "KILL": "kill", "USR1": "reopen_logs",
             "TTIN": "add_worker", "TTOU": "remove_worker"}  # fmt: skip


def cmd_signal(args: argparse.Namespace) -> int:
    name = args.name.upper().removeprefix("SIG")
    with _agent(args) as agent:
        if args.no_verify or name not in _VERIFIED:
            print(json.dumps(agent.signal(args.name), indent=2))  # the agent judges bad names
        else:
            status = getattr(agent, _VERIFIED[name])()
            _say(f"{name} delivered and verified: {status.describe()}")
    return 0


def cmd_agent_status(args: argparse.Namespace) -> int:
    with _agent(args) as agent:
        status = agent.status()
    print(json.dumps(asdict(status), indent=2) if args.json else status.describe())
    return 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cmd_doctor(args: argparse.Namespace) -> int:
    checks: list[tuple[str, bool, str]] = []
    problem = engine_problem()
    checks.append(("engine and compose v2", problem is None, problem or "answering"))
    if problem is None:
        tag = args.image or default_image()
        image = docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
        checks.append(("image " + tag, image.returncode == 0,
                       image.stdout.strip()[7:19] if image.returncode == 0
                       else "not built: run `observastack build`"))  # fmt: skip
    has_mm = shutil.which("mmdebstrap") is not None
    checks.append(("mmdebstrap (offline builds)", True,
                   "present" if has_mm else "absent: apt-get install -y mmdebstrap "
                   "(only needed without a registry)"))  # fmt: skip
    for port in args.ports:
        free = _port_free(port)
        detail = "free" if free else "in use: pick another with OBSERVASTACK_*_PORT"
        checks.append((f"port {port} on 127.0.0.1", free, detail))
    for name, ok, detail in checks:
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="observastack",
        description="Stand up and control the ObservaStack testbed.",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, func: Callable[[argparse.Namespace], int], help_: str,
             project: bool = True) -> argparse.ArgumentParser:  # fmt: skip
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        if project:
            p.add_argument("--project", default=DEFAULT_PROJECT,
                           help=f"compose project name (default: {DEFAULT_PROJECT})")  # fmt: skip
        return p

    p = verb("build", cmd_build, "build the image (offline path when no registry answers)", False)
    p.add_argument("--image", default=None, help="tag (default: content-addressed src-<digest>)")
    p.add_argument("--offline", choices=["auto", "yes", "no"], default="auto")
    p = verb("up", cmd_up, "build if needed, start the stack, wait until healthy, print endpoints")
    p.add_argument("--no-build", action="store_true", help="use the image as it is")
    p.add_argument("--vault", choices=["auto", "real", "standin"], default="auto")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health")
    verb("down", cmd_down, "remove the stack's containers, networks and volumes")
    p = verb("status", cmd_status, "health of every service (exit 1 unless all ready)")
    p.add_argument("--json", action="store_true")
    p = verb("endpoints", cmd_endpoints, "published URLs of user, secure, obs and vault")
    p.add_argument("--json", action="store_true")
    p = verb("logs", cmd_logs, "recent log lines of one service")
    p.add_argument("service")
    p.add_argument("--tail", type=int, default=100)
    p = verb("converge", cmd_converge, "restart an exited agent once the backend is healthy")
    p.add_argument("--timeout", type=float, default=60.0)
    p = verb("token", cmd_token, "print a fresh secure-path token (from Vault)")
    p.add_argument("--audience", default=None, help="audience (default: the secure-path's)")
    p = verb("signal", cmd_signal, "send a signal to the Gunicorn master through the agent")
    p.add_argument("name", help="HUP, TERM, KILL, USR1, TTIN or TTOU (SIG prefix optional)")
    p.add_argument("--no-verify", action="store_true",
                   help="print the agent's answer instead of checking the effect")  # fmt: skip
    agent_parser = sub.add_parser("agent", help="the Control Agent", description="Control Agent")
    agent_sub = agent_parser.add_subparsers(dest="agent_verb", required=True, metavar="VERB")
    p = agent_sub.add_parser("status", help="master, workers, generation, recent signals")
    p.set_defaults(func=cmd_agent_status)
    p.add_argument("--project", default=DEFAULT_PROJECT)
    p.add_argument("--json", action="store_true")
    add_control_verbs(sub, _stack, DEFAULT_PROJECT)
    p = verb("doctor", cmd_doctor, "check engine, compose v2, image, tools and free ports", False)
    p.add_argument("--image", default=None, help="tag (default: this source tree's image)")
    p.add_argument("--ports", type=int, nargs="*", default=[],
                   help="host ports you plan to pin (OBSERVASTACK_*_PORT)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ObservastackError as exc:
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
