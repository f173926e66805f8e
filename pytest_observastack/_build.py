"""Build the one ObservaStack image, online or offline, with caching.

Online (a registry answers): ``docker build`` on the public base (``python:3.12-slim``), Python
dependencies from the package index. Offline (no registry, as on these machines): a Debian
bookworm base made locally with mmdebstrap and ``docker import`` (made once, then reused), and
Python dependencies installed from wheels downloaded on the host into ``fixtures/compose/wheels``
(downloaded once per requirements hash). Either way the image build itself is layer-cached:
a rebuild with nothing changed takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_observastack._errors import BuildError, EngineError

__all__ = ["BuildPlan", "BuildResult", "build_images", "default_image", "project_root"]

PUBLIC_BASE = "python:3.12-slim"
OFFLINE_SUITE = "bookworm"
OFFLINE_PACKAGES = "python3,python3-venv,procps,ca-certificates,nginx,tini,curl,wrk,iproute2"
OFFLINE_PYTHON = "3.11"  # bookworm's python3
MANYLINUX_TAGS = (
    "manylinux_2_36", "manylinux_2_34", "manylinux_2_28", "manylinux_2_17",
    "manylinux2014", "manylinux_2_5", "manylinux1",
)  # fmt: skip

Say = Callable[[str], None]


def project_root() -> Path:
    """The checkout holding ``fixtures/compose`` (the image's build context)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "fixtures" / "compose" / "Dockerfile").is_file():
        return here
    env = os.environ.get("OBSERVASTACK_ROOT")
    if env and (Path(env) / "fixtures" / "compose" / "Dockerfile").is_file():
        return Path(env)
    raise BuildError(
        "cannot find fixtures/compose/Dockerfile next to the installed package; "
        "run from a checkout of ObservaStack or set OBSERVASTACK_ROOT to one"
    )


# What the Dockerfile copies: the image tag is a digest of exactly these, so two checkouts (or a
# developer's tree and CI's clone) never overwrite each other's image, and an unchanged tree
# needs no build at all.
CONTEXT = (
    "fixtures/compose/Dockerfile", "fixtures/compose/requirements.txt", "fixtures/compose/nginx",
    "sut", "agent", "identity", "gateway", "gcp", "loadgen",
)  # fmt: skip
IMAGE_REPO = "observastack/runtime"


def source_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for entry in CONTEXT:
        path = root / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc" or "terraform" in file.parts:
                continue  # what .dockerignore leaves out
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def default_image(root: Path | None = None) -> str:
    """``observastack/runtime:src-<digest>`` for the source tree at ``root``."""
    return f"{IMAGE_REPO}:src-{source_digest(root or project_root())[:12]}"


def _run(argv: list[str], *, timeout: float, what: str, stream: bool = False) -> str:
    try:
        proc = subprocess.run(
            argv,
            stdout=None if stream else subprocess.PIPE,
            stderr=subprocess.STDOUT if not stream else None,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {argv[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what}: no result after {timeout:.0f} s", str(exc.output or "")) from exc
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode})", proc.stdout or "")
    return proc.stdout or ""


def _image_exists(ref: str) -> bool:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def _registry_answers(ref: str, say: Say) -> bool:
    if _image_exists(ref):
        return True
    say(f"pulling {ref} ...")
    proc = subprocess.run(
        ["docker", "pull", "--quiet", ref], capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode == 0:
        return True
    reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    say(f"registry unreachable ({reason[0][:160]}); using the offline path")
    return False


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _offline_base(say: Say) -> str:
    tag = f"observastack/base:{OFFLINE_SUITE}-{_digest(OFFLINE_SUITE, OFFLINE_PACKAGES)}"
    if _image_exists(tag):
        say(f"offline base {tag}: cached")
        return tag
    if shutil.which("mmdebstrap") is None:
        raise BuildError(
            "no registry and no mmdebstrap: install it (apt-get install -y mmdebstrap) "
            "or give a reachable base with --base-image"
        )
    say(f"offline base {tag}: mmdebstrap {OFFLINE_SUITE} (about 20 s) ...")
    with tempfile.TemporaryDirectory(prefix="observastack-base-") as tmp:
        tar = Path(tmp) / "base.tar"
        _run(
            ["mmdebstrap", "--quiet", "--variant=apt", f"--include={OFFLINE_PACKAGES}",
             OFFLINE_SUITE, str(tar)],
            timeout=900, what="mmdebstrap",
        )  # fmt: skip
        _run(["docker", "import", str(tar), tag], timeout=300, what="docker import")
    return tag


def _offline_wheels(root: Path, say: Say) -> None:
    requirements = root / "fixtures" / "compose" / "requirements.txt"
    wheels = root / "fixtures" / "compose" / "wheels"
    machine = platform.machine()
    stamp_value = _digest(requirements.read_text(), OFFLINE_PYTHON, machine)
    stamp = wheels / ".stamp"
    if stamp.is_file() and stamp.read_text().strip() == stamp_value:
        say("wheels: cached")
        return
    say("wheels: downloading for the offline image ...")
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "-r", str(requirements), "-d", str(wheels), "--only-binary=:all:",
        "--python-version", OFFLINE_PYTHON, "--implementation", "cp",
        "--abi", f"cp{OFFLINE_PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none",
    ]  # fmt: skip
    for tag in MANYLINUX_TAGS:
        argv += ["--platform", f"{tag}_{machine}"]
    _run(argv, timeout=900, what="pip download (wheels for the image)")
    stamp.write_text(stamp_value + "\n")


@dataclass(frozen=True)
class BuildPlan:
    image: str | None = None  # None: default_image() (content-addressed)
    base_image: str | None = None  # None: public base if a registry answers, else offline
    offline: bool | None = None  # None: decide automatically
    no_cache: bool = False  # rebuild every layer (benchmarks of a cold build)


@dataclass(frozen=True)
class BuildResult:
    image: str
    image_id: str
    base_image: str
    offline: bool
    seconds: float


def _check_engine() -> None:
    proc = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise EngineError(
            "the Docker engine is not answering (docker info failed: "
            f"{proc.stderr.strip()[:200]}); start it, e.g. `dockerd >/var/log/dockerd.log 2>&1 &`"
        )


def build_images(plan: BuildPlan = BuildPlan(), *, say: Say = print) -> BuildResult:
    """Build the runtime image (and, offline, its base and wheels first)."""
    started = time.monotonic()
    _check_engine()
    root = project_root()
    image = plan.image or default_image(root)
    if plan.image is None and plan.base_image is None and _image_exists(image):
        image_id = _run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                        timeout=30, what="docker image inspect").strip()  # fmt: skip
        say(f"{image}: up to date (built from this source tree)")
        return BuildResult(image, image_id, "", False, time.monotonic() - started)
    base = plan.base_image or PUBLIC_BASE
    offline = plan.offline
    if offline is None:
        offline = plan.base_image is None and not _registry_answers(PUBLIC_BASE, say)
    wheels = root / "fixtures" / "compose" / "wheels"
    if offline:
        base = _offline_base(say)
        _offline_wheels(root, say)
    elif wheels.exists():
        shutil.rmtree(wheels)  # online builds install from the index
    say(f"building {image} on {base} ...")
    _run(
        ["docker", "build", "--quiet", *(["--no-cache"] if plan.no_cache else []),
         "-f", str(root / "fixtures/compose/Dockerfile"),
         "--build-arg", f"BASE_IMAGE={base}", "--label", "io.observastack.stack=1",
         "-t", image, "-t", f"{IMAGE_REPO}:dev", str(root)],
        timeout=1800, what="docker build",
    )  # fmt: skip
    image_id = _run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        timeout=30, what="docker image inspect",
    ).strip()  # fmt: skip
    seconds = time.monotonic() - started
    say(f"built {image} ({image_id[7:19]}) in {seconds:.1f} s")
    return BuildResult(image, image_id, base, offline, seconds)
