"""Markers: registered with signatures, lab arguments merged closest-first, skips per target."""

from __future__ import annotations

import pytest

from pytest_observastack._errors import MarkerError
from pytest_observastack._markers import LabMark, lab_mark, skip_reason


def test_markers_are_registered_with_signature_and_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.lab(name, points=1): a graded check of lab NAME worth POINTS points;*",
            "@pytest.mark.chaos: the test disrupts the stack*",
            "@pytest.mark.local_only: the test needs the local compose stack (skipped with --gcp)",
            "@pytest.mark.gcp_only: the test needs the two-host GCP deployment (skipped "
            "without --gcp)",
            "@pytest.mark.engine: the test needs a running Docker engine*",
        ],
        consecutive=False,
    )


def test_markers_pass_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.lab("l1")
        @pytest.mark.chaos
        @pytest.mark.engine
        def test_marked():
            pass
        """
    )
    pytester.runpytest("--strict-markers", "--collect-only").assert_outcomes()


# -- lab(name, points=1) ----------------------------------------------------------------------
def test_lab_defaults_to_one_point() -> None:
    assert lab_mark([pytest.mark.lab("metrics").mark]) == LabMark("metrics", 1.0)


def test_lab_points_positional_or_keyword() -> None:
    assert lab_mark([pytest.mark.lab("m", 3).mark]) == LabMark("m", 3.0)
    assert lab_mark([pytest.mark.lab(name="m", points=0.5).mark]) == LabMark("m", 0.5)


def test_lab_merges_closest_first() -> None:
    function = pytest.mark.lab(points=3).mark
    module = pytest.mark.lab("reload", points=1).mark
    assert lab_mark([function, module]) == LabMark("reload", 3.0)


def test_no_lab_mark() -> None:
    assert lab_mark([]) is None


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (pytest.mark.lab("m", point=2),
         "t: @pytest.mark.lab: got an unexpected keyword argument 'point'; "
         "signature: lab(name, points=1)"),
        (pytest.mark.lab("m", 1, 2),
         "t: @pytest.mark.lab: too many positional arguments; signature: lab(name, points=1)"),
        (pytest.mark.lab(points=2),
         "t: @pytest.mark.lab needs a lab name, a non-empty string (on the test, its class or "
         "its module), not None; signature: lab(name, points=1)"),
        (pytest.mark.lab(""),
         "t: @pytest.mark.lab needs a lab name, a non-empty string (on the test, its class or "
         "its module), not ''; signature: lab(name, points=1)"),
        (pytest.mark.lab("m", points="3"),
         "t: @pytest.mark.lab('m'): points must be a number >= 0, not '3'"),
        (pytest.mark.lab("m", points=-1),
         "t: @pytest.mark.lab('m'): points must be a number >= 0, not -1"),
        (pytest.mark.lab("m", points=True),
         "t: @pytest.mark.lab('m'): points must be a number >= 0, not True"),
    ],
)  # fmt: skip
def test_lab_mistakes_fail_loudly(mark: pytest.MarkDecorator, message: str) -> None:
    with pytest.raises(MarkerError) as caught:
        lab_mark([mark.mark], where="t: ")
    assert str(caught.value) == message


def test_a_bad_lab_mark_errors_the_test_with_its_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_lab="""
        import pytest

        @pytest.mark.lab("metrics", pointz=2)
        def test_typo():
            pass

        @pytest.mark.lab("metrics")
        def test_fine():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_lab.py::test_typo: @pytest.mark.lab: got an unexpected keyword argument "
            "'pointz'; signature: lab(name, points=1)"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# -- skips per target ---------------------------------------------------------------------------
def test_skip_reasons_locally() -> None:
    assert skip_reason(["local_only", "chaos", "engine", "lab"], gcp=False) is None
    assert skip_reason(["gcp_only"], gcp=False) == (
        "gcp_only: needs the two-host GCP deployment; run with --gcp (settings: "
        "--observastack-gcp-settings FILE or OBSERVASTACK_GCP_* environment)"
    )


def test_skip_reasons_under_gcp() -> None:
    assert skip_reason(["gcp_only", "engine"], gcp=True) is None
    assert skip_reason(["local_only"], gcp=True) == (
        "local_only: needs the local compose stack; this run targets the GCP deployment (--gcp)"
    )
    assert skip_reason(["chaos"], gcp=True) == (
        "chaos: disrupting services needs the local Docker engine (runner side); this run "
        "targets the GCP deployment (--gcp)"
    )


def test_gcp_only_is_skipped_locally_with_its_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_where="""
        import pytest

        @pytest.mark.gcp_only
        def test_on_gcp():
            pass

        @pytest.mark.local_only
        def test_here():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1] test_where.py:3: gcp_only: needs the two-host GCP deployment; run with "
         "--gcp*"]
    )  # fmt: skip


# -- chaos runs last, and the chaos fixture implies the marker -------------------------------
def test_chaos_tests_run_last_in_stable_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_order="""
        import pytest

        @pytest.mark.chaos
        def test_a_chaos():
            pass

        def test_b():
            pass

        @pytest.mark.chaos
        def test_c_chaos():
            pass

        def test_d():
            pass
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(
        ["*::test_b PASSED*", "*::test_d PASSED*", "*::test_a_chaos PASSED*",
         "*::test_c_chaos PASSED*"]
    )  # fmt: skip


def test_using_the_chaos_fixture_selects_with_m_chaos(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sel="""
        def test_disrupts(chaos):
            pass

        def test_calm():
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "-m", "chaos")
    result.stdout.fnmatch_lines(["test_sel.py::test_disrupts", "1/2 tests collected*"])
