"""The plugin's markers: their help text, the ``lab`` mark's arguments, and who is skipped where.

Data in: the marks on a collected test (closest first: function, class, module). Data out:
``LabMark`` (name, points) merged closest-first, so a module may name the lab and a test set its
points; ``skip_reason`` for a test that cannot run against the chosen target; ``MarkerError`` with
the signature when a mark's arguments are wrong (a typo fails loudly, it is never ignored).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_observastack._errors import MarkerError

__all__ = ["MARKERS", "LabMark", "lab_mark", "skip_reason"]

MARKERS = (
    "lab(name, points=1): a graded check of lab NAME worth POINTS points; the terminal summary "
    "and --observastack-report add them up per lab",
    "chaos: the test disrupts the stack (restart, kill, pause, network cut); such tests run "
    "last, and are skipped with --gcp",
    "local_only: the test needs the local compose stack (skipped with --gcp)",
    "gcp_only: the test needs the two-host GCP deployment (skipped without --gcp)",
    "engine: the test needs a running Docker engine and the session stack "
    "(deselect with -m 'not engine')",
)

LAB_SIGNATURE = "lab(name, points=1)"

SKIP_REASONS = {
    # marker -> (skipped when --gcp is given?, reason)
    "local_only": (True, "local_only: needs the local compose stack; this run targets the GCP "
                         "deployment (--gcp)"),
    "chaos": (True, "chaos: disrupting services needs the local Docker engine (runner side); "
                    "this run targets the GCP deployment (--gcp)"),
    "gcp_only": (False, "gcp_only: needs the two-host GCP deployment; run with --gcp "
                        "(settings: --observastack-gcp-settings FILE or OBSERVASTACK_GCP_* "
                        "environment)"),
}  # fmt: skip


class MarkLike(Protocol):
    """What we read of ``pytest.Mark``."""

    @property
    def args(self) -> tuple[Any, ...]: ...

    @property
    def kwargs(self) -> Any: ...


@dataclass(frozen=True)
class LabMark:
    name: str
    points: float = 1.0


def _lab_arguments(name: object = None, points: object = None) -> tuple[object, object]:
    return name, points


_LAB_PARAMETERS = inspect.signature(_lab_arguments)


def lab_mark(marks: Iterable[MarkLike], where: str = "") -> LabMark | None:
    """Merge ``lab`` marks closest-first; None when there is none."""
    name: object = None
    points: object = None
    seen = False
    for mark in marks:
        seen = True
        try:
            bound = _LAB_PARAMETERS.bind(*mark.args, **dict(mark.kwargs))
        except TypeError as exc:
            raise MarkerError(
                f"{where}@pytest.mark.lab: {exc}; signature: {LAB_SIGNATURE}"
            ) from None
        if name is None:
            name = bound.arguments.get("name")
        if points is None:
            points = bound.arguments.get("points")
    if not seen:
        return None
    if not isinstance(name, str) or not name.strip():
        raise MarkerError(
            f"{where}@pytest.mark.lab needs a lab name, a non-empty string (on the test, its "
            f"class or its module), not {name!r}; signature: {LAB_SIGNATURE}"
        )
    if points is None:
        points = 1
    if isinstance(points, bool) or not isinstance(points, int | float) or points < 0:
        raise MarkerError(
            f"{where}@pytest.mark.lab({name!r}): points must be a number >= 0, not {points!r}"
        )
    return LabMark(name.strip(), float(points))


def skip_reason(markers: Sequence[str], *, gcp: bool) -> str | None:
    """Why a test with these marker names cannot run against the chosen target (None: it can)."""
    for marker in markers:
        rule = SKIP_REASONS.get(marker)
        if rule is not None and rule[0] == gcp:
            return rule[1]
    return None
