locals {
  sut_tag      = "${var.name_prefix}-sut-host"
  control_tag  = "${var.name_prefix}-control-host"
  sut_ip       = cidrhost(var.subnet_cidr, 10)
  control_ip   = cidrhost(var.subnet_cidr, 20)
  iap_tcp_from = "35.235.240.0/20" # Google's IAP TCP-forwarding range (SSH only, OS Login)
  # Every Google-signed token has the same issuer: the verifiers accept exactly one caller.
  allowed_caller = var.allowed_caller_email != "" ? var.allowed_caller_email : google_service_account.control_host.email
  labels         = merge(var.labels, { app = "observastack" })

  # What `pytest --gcp` reads on the control host (also a Terraform output).
  gcp_settings = <<-EOT
    # ObservaStack --gcp settings, written by Terraform (gcp/terraform)
    project = "${var.name_prefix}@${var.project_id}"
    audience = "${var.secure_path_audience}"
    caller_email = "${local.allowed_caller}"
    token_max_age_s = 300

    [endpoints]
    user = "http://${local.sut_ip}:${var.user_path_port}"
    secure = "http://${local.sut_ip}:${var.secure_path_port}"
    obs = "http://${local.sut_ip}:${var.obs_path_port}"
  EOT
}
