"""Reports: per-lab terminal summary, the instructors' JSON, chaos downtime windows, xdist."""

from __future__ import annotations

import json

import pytest

from pytest_observastack._downtime import ChaosEvent, DowntimeWindow
from pytest_observastack._report import CHAOS_PROPERTY, LAB_PROPERTY, LabReport, Phase

LAB = {"name": "reload", "points": 2.0}
# Plugins this project does not need in a worker; without them a worker starts in about 1 s.
QUIET_PLUGINS = ("-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")


def _run(report: LabReport, nodeid: str, outcomes: dict[str, str], **extra: object) -> None:
    for when in ("setup", "call", "teardown"):
        outcome = outcomes.get(when, "passed")
        if when == "call" and outcomes.get("setup", "passed") != "passed":
            continue
        report.add(
            Phase(nodeid, when, outcome, 0.5, message=str(extra.get(when, "")),
                  properties=[(LAB_PROPERTY, extra.get("lab", LAB))],
                  wasxfail=bool(extra.get("xfail")))
        )  # fmt: skip


def test_outcomes_merge_over_phases() -> None:
    report = LabReport()
    _run(report, "t::passes", {})
    _run(report, "t::fails", {"call": "failed"}, call="assert 1 == 2")
    _run(report, "t::setup_error", {"setup": "failed"}, setup="ServiceNotReady: x")
    _run(report, "t::teardown_error", {"teardown": "failed"}, teardown="boom")
    _run(report, "t::skipped", {"setup": "skipped"}, setup="gcp_only: ...")
    _run(report, "t::xfailed", {"call": "skipped"}, xfail=True, call="known")
    outcomes = {r.nodeid: (r.outcome, r.message, r.earned) for r in report.results}
    assert outcomes == {
        "t::passes": ("passed", "", 2.0),
        "t::fails": ("failed", "assert 1 == 2", 0.0),
        "t::setup_error": ("error", "ServiceNotReady: x", 0.0),
        "t::teardown_error": ("error", "boom", 0.0),
        "t::skipped": ("skipped", "gcp_only: ...", 0.0),
        "t::xfailed": ("xfailed", "known", 0.0),
    }
    assert {r.duration_s for r in report.results} <= {1.0, 1.5}


def test_summary_per_lab() -> None:
    report = LabReport()
    _run(report, "t.py::test_a", {})
    message = "assert 0 == 200\nwhere 0 = x\nmore\nmore"
    _run(report, "t.py::test_b", {"call": "failed"}, call=message)
    _run(report, "t.py::test_c", {}, lab={"name": "metrics", "points": 1.0})
    _run(report, "t.py::test_plain", {}, lab=None)
    assert report.summary_lines() == [
        "lab metrics: 1/1 points (1 of 1 check passed)",
        "lab reload: 2/4 points (1 of 2 checks passed)",
        "  FAILED t.py::test_b (2 points): assert 0 == 200",
        "      where 0 = x",
        "      more ...",
        "total: 3/5 points over 2 labs",
    ]


def test_no_labs_no_summary() -> None:
    report = LabReport()
    _run(report, "t::x", {}, lab=None)
    assert report.summary_lines() == []


def test_downtime_lines_and_json() -> None:
    event = ChaosEvent(
        "restart backend", 1700000000.0, 1700000006.25,
        (DowntimeWindow(1700000001.5, 1700000003.75, "ControlError: 503"),),
    )  # fmt: skip
    calm = ChaosEvent("pause backend", 1700000010.0, 1700000011.0)
    report = LabReport()
    report.add(Phase("t::c", "call", "passed", 6.0))
    props = [(CHAOS_PROPERTY, [event.to_dict(), calm.to_dict()])]
    report.add(Phase("t::c", "teardown", "passed", 0.1, properties=props))
    report.add(Phase("t::c", "teardown", "passed", 0.0, properties=props))  # no duplicates
    assert report.downtime_lines() == [
        "t::c: restart backend: control plane down 2.25 s (22:13:21.500Z to 22:13:23.750Z: "
        "2.25 s); steady again after 6.2 s",
        "t::c: pause backend: no control-plane downtime seen; steady again after 1.0 s",
    ]
    data = report.to_json()
    assert data["chaos"][0] == {
        "nodeid": "t::c", "what": "restart backend", "started": 1700000000.0,
        "ended": 1700000006.25,
        "downtime": [{"start": 1700000001.5, "end": 1700000003.75, "duration_s": 2.25,
                      "last_error": "ControlError: 503"}],
    }  # fmt: skip


LAB_FILE = """
import pytest

@pytest.mark.lab("secure-path")
class TestSecurePath:
    def test_fresh_token_accepted(self):
        pass

    @pytest.mark.lab(points=2)
    def test_forged_token_refused(self):
        assert 401 == 200, "a forged token got in"

@pytest.mark.lab("other", points=0.5)
def test_other():
    pass

def test_not_graded():
    pass
"""


def test_terminal_summary_per_lab(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lab=LAB_FILE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*= ObservaStack labs =*",
            "lab other: 0.5/0.5 points (1 of 1 check passed)",
            "lab secure-path: 1/3 points (1 of 2 checks passed)",
            "  FAILED test_lab.py::TestSecurePath::test_forged_token_refused (2 points): "
            "AssertionError: a forged token got in",
            "      assert 401 == 200",
            "total: 1.5/3.5 points over 2 labs",
        ]
    )


def test_json_report_for_instructors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lab=LAB_FILE)
    result = pytester.runpytest("--observastack-report", "out/grades.json")
    result.stdout.fnmatch_lines([f"ObservaStack report: {pytester.path}/out/grades.json"])
    data = json.loads((pytester.path / "out/grades.json").read_text())
    assert data["format"] == "observastack-report/1"
    assert data["target"] == "local"
    assert data["labs"] == {
        "other": {"earned": 0.5, "possible": 0.5, "checks": 1, "passed": 1},
        "secure-path": {"earned": 1.0, "possible": 3.0, "checks": 2, "passed": 1},
    }
    tests = {t["nodeid"]: t for t in data["tests"]}
    failed = tests["test_lab.py::TestSecurePath::test_forged_token_refused"]
    assert (failed["lab"], failed["points"], failed["earned"], failed["outcome"]) == (
        "secure-path", 2.0, 0.0, "failed",
    )  # fmt: skip
    assert failed["message"].startswith("AssertionError: a forged token got in")
    assert failed["duration_s"] >= 0
    assert tests["test_lab.py::test_not_graded"]["lab"] is None
    assert data["chaos"] == []


def test_report_is_complete_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lab=LAB_FILE)
    result = pytester.runpytest("-n", "2", *QUIET_PLUGINS, "--observastack-report", "grades.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["total: 1.5/3.5 points over 2 labs"])
    data = json.loads((pytester.path / "grades.json").read_text())
    assert len(data["tests"]) == 4
    assert data["labs"]["secure-path"]["possible"] == 3.0


def test_chaos_windows_reach_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_chaos="""
        from pytest_observastack._downtime import ChaosEvent, DowntimeWindow

        def test_disrupt(request):
            event = ChaosEvent("kill agent", 100.0, 104.0, (DowntimeWindow(101.0, 102.5, "x"),))
            request.node.user_properties.append(("observastack_chaos", [event.to_dict()]))
        """
    )
    result = pytester.runpytest("--observastack-report", "r.json")
    result.stdout.fnmatch_lines(
        [
            "*= ObservaStack chaos: control-plane downtime =*",
            "test_chaos.py::test_disrupt: kill agent: control plane down 1.50 s "
            "(00:01:41.000Z to 00:01:42.500Z: 1.50 s); steady again after 4.0 s",
        ]
    )
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["chaos"][0]["downtime"][0]["duration_s"] == 1.5
