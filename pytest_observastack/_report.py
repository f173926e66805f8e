"""Grading and chaos reports: the terminal summary per lab and the JSON report for instructors.

Data in: one ``Phase`` per test phase (setup, call, teardown), made from pytest's reports by
``ReportPlugin`` (also from xdist workers: the lab and the chaos events travel in the report's
``user_properties``). Data out: ``LabReport.summary_lines()`` / ``downtime_lines()`` for the
terminal, and ``LabReport.to_json()`` (format ``observastack-report/1``): per test its lab,
points, points earned, outcome, duration and message; per lab the totals; every chaos action with
its control-plane downtime windows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_observastack._downtime import ChaosEvent

__all__ = ["CHAOS_PROPERTY", "LAB_PROPERTY", "LabReport", "Phase", "ReportPlugin", "TestResult"]

LAB_PROPERTY = "observastack_lab"
CHAOS_PROPERTY = "observastack_chaos"
FORMAT = "observastack-report/1"


@dataclass(frozen=True)
class Phase:
    """What the report needs of one pytest phase report."""

    nodeid: str
    when: str  # setup | call | teardown
    outcome: str  # passed | failed | skipped
    duration_s: float
    message: str = ""
    properties: Sequence[tuple[str, object]] = ()
    wasxfail: bool = False


@dataclass
class TestResult:
    nodeid: str
    lab: str | None = None
    points: float = 0.0
    outcome: str = "passed"  # passed failed error skipped xfailed xpassed
    duration_s: float = 0.0
    message: str = ""
    chaos: list[ChaosEvent] = field(default_factory=list)

    __test__ = False  # not a test class, whatever pytest thinks of the name

    @property
    def earned(self) -> float:
        return self.points if self.outcome == "passed" else 0.0


def _merge_outcome(result: TestResult, phase: Phase) -> None:
    if phase.when == "setup":
        if phase.outcome == "failed":
            result.outcome, result.message = "error", phase.message
        elif phase.outcome == "skipped":
            result.outcome = "xfailed" if phase.wasxfail else "skipped"
            result.message = phase.message
    elif phase.when == "call":
        if phase.outcome == "failed":
            result.outcome, result.message = "failed", phase.message
        elif phase.wasxfail:
            result.outcome = "xfailed" if phase.outcome == "skipped" else "xpassed"
            result.message = phase.message
        elif phase.outcome == "skipped":
            result.outcome, result.message = "skipped", phase.message
    elif phase.outcome == "failed" and result.outcome == "passed":
        result.outcome, result.message = "error", phase.message


def _points(value: float) -> str:
    return f"{value:g}"


def _plural(n: float, word: str) -> str:
    return f"{_points(n)} {word}{'' if n == 1 else 's'}"


def _clock(wall: float) -> str:
    stamp = time.strftime("%H:%M:%S", time.gmtime(wall))
    return f"{stamp}.{int(wall * 1000) % 1000:03d}Z"


class LabReport:
    """Collects phases, answers per test and per lab."""

    def __init__(self) -> None:
        self._results: dict[str, TestResult] = {}

    def add(self, phase: Phase) -> None:
        result = self._results.setdefault(phase.nodeid, TestResult(phase.nodeid))
        result.duration_s += phase.duration_s
        for name, value in phase.properties:
            if name == LAB_PROPERTY and isinstance(value, Mapping):
                result.lab, result.points = str(value["name"]), float(value["points"])
            elif name == CHAOS_PROPERTY and isinstance(value, list):
                known = {(e.what, e.started) for e in result.chaos}
                for item in value:
                    event = ChaosEvent.from_dict(item)
                    if (event.what, event.started) not in known:
                        result.chaos.append(event)
        _merge_outcome(result, phase)

    @property
    def results(self) -> list[TestResult]:
        return list(self._results.values())

    def labs(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for result in self._results.values():
            if result.lab is None:
                continue
            lab = totals.setdefault(
                result.lab, {"earned": 0.0, "possible": 0.0, "checks": 0, "passed": 0}
            )
            lab["earned"] += result.earned
            lab["possible"] += result.points
            lab["checks"] += 1
            lab["passed"] += result.outcome == "passed"
        return dict(sorted(totals.items()))

    def summary_lines(self) -> list[str]:
        """Per lab: points earned / possible, then each check that did not pass, with why."""
        labs = self.labs()
        lines: list[str] = []
        for name, lab in labs.items():
            lines.append(
                f"lab {name}: {_points(lab['earned'])}/{_points(lab['possible'])} points "
                f"({_points(lab['passed'])} of {_plural(lab['checks'], 'check')} passed)"
            )
            for result in self._results.values():
                if result.lab == name and result.outcome != "passed":
                    first, *more = _first_lines(result.message) or [""]
                    lines.append(
                        f"  {result.outcome.upper()} {result.nodeid} "
                        f"({_plural(result.points, 'point')})" + (f": {first}" if first else "")
                    )
                    lines += [f"      {line}" for line in more]
        if labs:
            earned = sum(lab["earned"] for lab in labs.values())
            possible = sum(lab["possible"] for lab in labs.values())
            lines.append(
                f"total: {_points(earned)}/{_points(possible)} points over "
                f"{_plural(len(labs), 'lab')}"
            )
        return lines

    def downtime_lines(self) -> list[str]:
        lines = []
        for result in self._results.values():
            for event in result.chaos:
                if event.downtime:
                    spans = ", ".join(
                        f"{_clock(w.start)} to {_clock(w.end)}: {w.duration_s:.2f} s"
                        for w in event.downtime
                    )
                    seen = f"control plane down {event.downtime_s:.2f} s ({spans})"
                else:
                    seen = "no control-plane downtime seen"
                lines.append(
                    f"{result.nodeid}: {event.what}: {seen}; steady again after "
                    f"{event.ended - event.started:.1f} s"
                )
        return lines

    def to_json(self, *, target: str = "local") -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target": target,
            "labs": self.labs(),
            "tests": [
                {"nodeid": r.nodeid, "lab": r.lab, "points": r.points, "earned": r.earned,
                 "outcome": r.outcome, "duration_s": round(r.duration_s, 3),
                 "message": r.message[:4000]}
                for r in self._results.values()
            ],
            "chaos": [
                {"nodeid": r.nodeid, **event.to_dict()}
                for r in self._results.values() for event in r.chaos
            ],
        }  # fmt: skip


def _first_lines(message: str, n: int = 3) -> list[str]:
    lines = [line.rstrip()[:200] for line in message.strip().splitlines() if line.strip()]
    if len(lines) > n:
        lines = [*lines[: n - 1], f"{lines[n - 1]} ..."]
    return lines


def failure_message(report: pytest.TestReport) -> str:
    """The one-line-ish reason of a failed or skipped phase."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:  # pytest.fail("...") says "Failed: ...": the reason is the message
        return str(crash.message).removeprefix("Failed: ")
    text = str(longrepr).strip().splitlines()
    return text[-1] if text else ""


def _phase(report: pytest.TestReport) -> Phase:
    wasxfail = hasattr(report, "wasxfail")
    message = failure_message(report)
    if wasxfail and not message:
        message = str(getattr(report, "wasxfail", ""))
    return Phase(
        nodeid=report.nodeid,
        when=report.when or "call",
        outcome=report.outcome,
        duration_s=float(report.duration),
        message=message,
        properties=[(str(k), v) for k, v in report.user_properties],
        wasxfail=wasxfail,
    )


class ReportPlugin:
    """Registered on the controlling process (not on xdist workers)."""

    def __init__(self, path: Path | None, *, target: str) -> None:
        self.path = path
        self.target = target
        self.report = LabReport()
        self.written: Path | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.report.add(_phase(report))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.report.to_json(target=self.target)
        self.path.write_text(json.dumps(data, indent=2) + "\n")
        self.written = self.path

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        _section(terminalreporter, "ObservaStack labs", self.report.summary_lines())
        _section(terminalreporter, "ObservaStack chaos: control-plane downtime",
                 self.report.downtime_lines())  # fmt: skip
        if self.written is not None:
            terminalreporter.write_line(f"ObservaStack report: {self.written}")


def _section(terminal: Any, title: str, lines: Iterable[str]) -> None:
    lines = list(lines)
    if lines:
        terminal.write_sep("=", title)
        for line in lines:
            terminal.write_line(line)
