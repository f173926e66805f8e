"""The two-host deployment as code: the VPC firewall implements the reachability contract.

Terraform cannot run here, so the .tf files are parsed with python-hcl2 and the contract is
checked on what they say: which ports are open to whom, and that nothing else is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gcp_testkit import SUT_HOST_OVERRIDE, TF_DIR, Terraform, heredoc, load_terraform

from gcp.settings import GcpSettings

pytest.importorskip("hcl2", reason="python-hcl2 parses the Terraform (pip install python-hcl2)")

SUT_SA = "${google_service_account.sut_host.email}"
CONTROL_SA = "${google_service_account.control_host.email}"
PORT = {
    "user": "${tostring(var.user_path_port)}",
    "secure": "${tostring(var.secure_path_port)}",
    "obs": "${tostring(var.obs_path_port)}",
    "ssh": "22",
}
IAP_RANGE = "35.235.240.0/20"
# Container ports of things that must never be reachable from another machine.
NEVER_OPEN = {"8000": "backend", "9000": "agent", "8200": "vault", "8225": "metadata",
              "8226": "jwks-relay"}  # fmt: skip
EVERYONE = {"0.0.0.0/0", "::/0"}


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


@pytest.fixture(scope="module")
def firewalls(tf: Terraform) -> dict[str, dict[str, Any]]:
    return tf.of_type("google_compute_firewall")


def allowed_ports(rule: dict[str, Any]) -> set[str]:
    return {port for block in rule.get("allow", []) for port in block.get("ports", [])}


def test_every_tf_file_parses(tf: Terraform) -> None:
    assert set(tf.raw) >= {"versions.tf", "variables.tf", "main.tf", "network.tf",
                           "firewall.tf", "iam.tf", "compute.tf", "outputs.tf"}  # fmt: skip
    assert tf.of_type("google_compute_instance").keys() == {"sut_host", "control_host"}


def test_the_firewall_has_exactly_the_contracted_rules(firewalls: dict[str, Any]) -> None:
    assert set(firewalls) == {
        "user_path_from_loadgen", "user_path_from_control", "secure_path_from_control",
        "obs_path_from_control", "ssh_from_iap", "deny_all_ingress",
    }  # fmt: skip
    assert {rule["direction"] for rule in firewalls.values()} == {"INGRESS"}


@pytest.mark.parametrize("path", ["secure", "obs"])
def test_control_plane_paths_only_from_the_control_hosts_service_account(
    firewalls: dict[str, Any], path: str
) -> None:
    rules = {name: rule for name, rule in firewalls.items() if PORT[path] in allowed_ports(rule)}
    assert list(rules) == [f"{path}_path_from_control"]
    (rule,) = rules.values()
    assert rule["source_service_accounts"] == [CONTROL_SA]
    assert rule["target_service_accounts"] == [SUT_SA]
    assert "source_ranges" not in rule
    assert "source_tags" not in rule
    assert allowed_ports(rule) == {PORT[path]}


def test_user_path_from_the_load_generators_and_the_control_host(
    firewalls: dict[str, Any],
) -> None:
    rules = {n: r for n, r in firewalls.items() if PORT["user"] in allowed_ports(r)}
    assert set(rules) == {"user_path_from_loadgen", "user_path_from_control"}
    assert rules["user_path_from_loadgen"]["source_ranges"] == "${var.loadgen_source_ranges}"
    assert rules["user_path_from_control"]["source_service_accounts"] == [CONTROL_SA]
    for rule in rules.values():
        assert rule["target_service_accounts"] == [SUT_SA]
        assert allowed_ports(rule) == {PORT["user"]}


def test_no_allow_rule_is_open_to_everyone_or_to_every_port(firewalls: dict[str, Any]) -> None:
    for name, rule in firewalls.items():
        if "allow" not in rule:
            continue
        sources = rule.get("source_ranges", [])
        assert not (set(sources if isinstance(sources, list) else [sources]) & EVERYONE), name
        for block in rule["allow"]:
            assert block["protocol"] == "tcp", name
            assert block.get("ports"), f"{name} allows every port"
        assert allowed_ports(rule) <= set(PORT.values()), name
        assert "log_config" in rule, name


def test_nothing_names_the_backend_agent_or_token_services(tf: Terraform) -> None:
    for name, rule in tf.of_type("google_compute_firewall").items():
        opened = allowed_ports(rule) & NEVER_OPEN.keys()
        assert not opened, f"{name} opens {[NEVER_OPEN[p] for p in opened]}"
    for name, spec in tf.variables.items():
        if name.endswith("_port"):
            assert str(spec["default"]) not in NEVER_OPEN, name


def test_ssh_only_through_iap(firewalls: dict[str, Any], tf: Terraform) -> None:
    rule = firewalls["ssh_from_iap"]
    assert rule["source_ranges"] == ["${local.iap_tcp_from}"]
    assert tf.locals["iap_tcp_from"] == IAP_RANGE
    assert allowed_ports(rule) == {"22"}
    assert rule["count"] == "${var.iap_ssh ? 1 : 0}"


def test_everything_else_is_denied_below_every_allow(firewalls: dict[str, Any]) -> None:
    deny = firewalls["deny_all_ingress"]
    assert deny["deny"] == [{"protocol": "all"}]
    assert deny["source_ranges"] == ["0.0.0.0/0"]
    allows = [rule["priority"] for rule in firewalls.values() if "allow" in rule]
    assert deny["priority"] > max(allows)


def test_loadgen_ranges_cannot_be_everyone(tf: Terraform) -> None:
    spec = tf.variables["loadgen_source_ranges"]
    assert "default" not in spec  # must be chosen
    conditions = " ".join(v["condition"] for v in spec["validation"])
    assert '!contains(var.loadgen_source_ranges, "0.0.0.0/0")' in conditions


@pytest.mark.parametrize("host", ["sut_host", "control_host"])
def test_hosts_are_private_shielded_and_use_os_login(tf: Terraform, host: str) -> None:
    vm = tf.of_type("google_compute_instance")[host]
    for nic in vm["network_interface"]:
        assert "access_config" not in nic, f"{host} has a public IP"
    (shielded,) = vm["shielded_instance_config"]
    assert shielded == {"enable_secure_boot": True, "enable_vtpm": True,
                        "enable_integrity_monitoring": True}  # fmt: skip
    assert vm["metadata"] == {"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE",
                              "serial-port-enable": "FALSE"}  # fmt: skip
    assert vm["can_ip_forward"] is False
    (account,) = vm["service_account"]
    assert account["email"] == f"${{google_service_account.{host}.email}}"


def test_each_host_has_its_own_service_account(tf: Terraform) -> None:
    accounts = tf.of_type("google_service_account")
    assert set(accounts) == {"sut_host", "control_host"}
    assert accounts["sut_host"]["account_id"] != accounts["control_host"]["account_id"]
    # Log and metric writing only: minting its own ID tokens needs no role at all.
    assert tf.locals["host_roles"] == ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
    assert tf.of_type("google_project_iam_member").keys() == {"host_roles"}


def test_audience_and_allowed_caller_are_variables(tf: Terraform) -> None:
    assert tf.variables["secure_path_audience"]["default"] == "observastack-secure-path"
    assert tf.variables["allowed_caller_email"]["default"] == ""
    assert "google_service_account.control_host.email" in tf.locals["allowed_caller"]


def template_placeholders(name: str) -> set[str]:
    text = (TF_DIR / "templates" / name).read_text()
    return set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", text))


@pytest.mark.parametrize(
    ("host", "template"),
    [("sut_host", "sut-host-startup.sh.tftpl"), ("control_host", "control-host-startup.sh.tftpl")],
)
def test_startup_templates_get_exactly_the_variables_they_use(
    tf: Terraform, host: str, template: str
) -> None:
    call = tf.of_type("google_compute_instance")[host]["metadata_startup_script"]
    assert template in call
    passed = set(re.findall(r"(\w+) = ", call.split("{", 2)[-1]))
    assert passed == template_placeholders(template)


def test_sut_host_script_sets_every_variable_the_override_requires() -> None:
    script = (TF_DIR / "templates" / "sut-host-startup.sh.tftpl").read_text()
    assert "-f gcp/compose.sut-host.yaml" in script
    required = set(re.findall(r"\$\{(\w+):\?", SUT_HOST_OVERRIDE.read_text()))
    assert required == {"OBSERVASTACK_AUDIENCE", "OBSERVASTACK_GCP_ALLOWED_CALLERS",
                        "OBSERVASTACK_CONTROL_BIND"}  # fmt: skip
    written = set(re.findall(r"^(OBSERVASTACK_\w+)=", script, re.MULTILINE))
    assert required <= written


def test_port_defaults_match_the_sut_host_override(tf: Terraform) -> None:
    text = SUT_HOST_OVERRIDE.read_text()
    for path, port in (("user", 8080), ("secure", 8443), ("obs", 9090)):
        assert tf.variables[f"{path}_path_port"]["default"] == port
        assert f":-{port}}}:{port}" in text


def test_the_settings_output_is_a_valid_gcp_settings_file(tf: Terraform, tmp_path: Path) -> None:
    text = heredoc(tf.locals["gcp_settings"])
    filled = re.sub(r"\$\{[^}]+\}", "x", text).replace('"http://x:x"', '"http://10.42.0.10:1"')
    filled = filled.replace('caller_email = "x"', 'caller_email = "ctl@p.iam.gserviceaccount.com"')
    path = tmp_path / "gcp.toml"
    path.write_text(filled)
    settings = GcpSettings.load(path, {})
    assert settings.token_max_age_s == 300
    assert set(settings.endpoints) == {"user", "secure", "obs"}
    assert tf.outputs["gcp_settings"]["value"] == "${local.gcp_settings}"


def test_checkov_skips_carry_a_reason(tf: Terraform) -> None:
    skips = re.findall(r"#checkov:skip=(\w+):(.*)", "\n".join(tf.raw.values()))
    assert skips, "expected the documented CKV_GCP_38 skips"
    for check, reason in skips:
        assert len(reason.strip()) > 30, f"{check} skipped without a reason"


def test_checkov_finds_nothing_unaccepted() -> None:
    checkov = os.environ.get("OBSERVASTACK_CHECKOV") or shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (pip install checkov in its own venv and set "
                    "OBSERVASTACK_CHECKOV=/path/to/venv/bin/checkov)")  # fmt: skip
    proc = subprocess.run(
        [checkov, "-d", str(TF_DIR), "--framework", "terraform", "--skip-download", "--compact",
         "--quiet"],
        capture_output=True, text=True, timeout=300, check=False,
        env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
