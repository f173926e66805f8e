"""Options: namespaced flags, their ini equivalents, validation messages, xdist naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_observastack._options import OPTIONS, PluginSettings, read_settings
from pytest_observastack._stack import StackOptions


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "ObservaStack testbed:",
            "  --gcp, --observastack-gcp",
            "*--observastack-gcp-settings=PATH",
            "*--observastack-keep*",
            "*--observastack-reuse*",
            "*--observastack-project=NAME",
            "*--observastack-report=PATH",
            "*--observastack-image=TAG",
            "*--observastack-no-build*",
            "*--observastack-vault=MODE",
            "*--observastack-compose-file=PATH",
        ]
    )


def test_every_option_has_an_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    inis = [f"  {option.dest} (*" for option in OPTIONS] + ["  observastack_compose_files (*"]
    for line in inis:
        result.stdout.fnmatch_lines([line])


def test_defaults(pytester: pytest.Pytester) -> None:
    settings = read_settings(pytester.parseconfig())
    assert settings == PluginSettings()
    assert settings.stack_options() == StackOptions()


def test_command_line(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig(
        "--gcp", "--observastack-gcp-settings", "gcp.toml", "--observastack-keep",
        "--observastack-reuse", "--observastack-project", "obsk-plug-a",
        "--observastack-report", "out/report.json", "--observastack-image", "img:1",
        "--observastack-no-build", "--observastack-vault", "standin",
        "--observastack-compose-file", "a.yaml", "--observastack-compose-file", "b.yaml",
    )  # fmt: skip
    assert read_settings(config) == PluginSettings(
        gcp=True,
        gcp_settings="gcp.toml",
        keep=True,
        reuse=True,
        project="obsk-plug-a",
        compose_files=(Path("a.yaml"), Path("b.yaml")),
        report=Path.cwd() / "out/report.json",
        image="img:1",
        build=False,
        vault="standin",
    )


def test_ini_equivalents(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        observastack_gcp = true
        observastack_gcp_settings = gcp.toml
        observastack_keep = true
        observastack_reuse = true
        observastack_project = obsk-plug-ini
        observastack_report = reports/grades.json
        observastack_image = img:2
        observastack_no_build = true
        observastack_vault = real
        observastack_compose_files = extra.yaml
        """
    )
    settings = read_settings(pytester.parseconfig())
    assert settings == PluginSettings(
        gcp=True,
        gcp_settings="gcp.toml",
        keep=True,
        reuse=True,
        project="obsk-plug-ini",
        compose_files=(pytester.path / "extra.yaml",),
        report=pytester.path / "reports/grades.json",
        image="img:2",
        build=False,
        vault="real",
    )


def test_command_line_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nobservastack_project = from-ini\nobservastack_vault = real\n")
    config = pytester.parseconfig("--observastack-project", "from-cli")
    settings = read_settings(config)
    assert (settings.project, settings.vault) == ("from-cli", "real")


def test_bad_vault_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--observastack-vault", "bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --observastack-vault must be one of auto, real, standin, not 'bogus'"]
    )


def test_bad_project_name_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--observastack-project", "My Stack")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --observastack-project 'My Stack' is not a compose project name: use "
            "lowercase letters, digits, '-' and '_', starting with a letter or digit"
        ]
    )


def test_a_fixed_project_name_gets_the_xdist_worker_as_suffix() -> None:
    settings = PluginSettings(project="obsk-plug-x", worker="gw1")
    assert settings.stack_options().project == "obsk-plug-x-gw1"
    assert PluginSettings(worker="gw1").stack_options().project is None  # obsk-<pid>-<hex>


def test_a_given_image_is_not_built() -> None:
    assert PluginSettings(image="observastack/runtime:ci").stack_options().build is False
    assert PluginSettings().stack_options().build is True


def test_settings_become_stack_options() -> None:
    settings = PluginSettings(keep=True, build=False, vault="standin", image="i:1",
                              compose_files=(Path("x.yaml"),))  # fmt: skip
    assert settings.stack_options() == StackOptions(
        keep=True, build=False, vault="standin", image="i:1",
        extra_compose_files=(Path("x.yaml"),),
    )  # fmt: skip
