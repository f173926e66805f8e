# One service account per host, with nothing but log and metric writing.
# No role is needed to mint ID tokens: a VM's metadata server signs tokens for the VM's own
# service account (that is the control host's credential for the secure-path).

resource "google_service_account" "sut_host" {
  account_id   = "${var.name_prefix}-sut-host"
  display_name = "ObservaStack SUT host (backend, agent, gateways)"
}

resource "google_service_account" "control_host" {
  account_id   = "${var.name_prefix}-control-host"
  display_name = "ObservaStack control host (orchestrator: the only secure-path caller)"
}

locals {
  host_roles = ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
  host_role_bindings = {
    for pair in setproduct(["sut_host", "control_host"], local.host_roles) :
    "${pair[0]}:${pair[1]}" => {
      email = pair[0] == "sut_host" ? google_service_account.sut_host.email : google_service_account.control_host.email
      role  = pair[1]
    }
  }
}

resource "google_project_iam_member" "host_roles" {
  for_each = local.host_role_bindings
  project  = var.project_id
  role     = each.value.role
  member   = "serviceAccount:${each.value.email}"
}
