output "sut_host_internal_ip" {
  description = "The SUT host's address: user-, secure- and obs-path ports live here."
  value       = google_compute_address.sut_host.address
}

output "control_host_service_account" {
  description = "The control host's service account: the e-mail in its ID tokens."
  value       = google_service_account.control_host.email
}

output "sut_host_service_account" {
  description = "The SUT host's service account (firewall target)."
  value       = google_service_account.sut_host.email
}

output "allowed_caller_email" {
  description = "What the verifiers accept (OBSERVASTACK_JWT_ALLOWED_SUBJECTS on the SUT host)."
  value       = local.allowed_caller
}

output "gcp_settings" {
  description = "The pytest --gcp settings file (TOML); the control host has it at /etc/observastack/gcp.toml."
  value       = local.gcp_settings
}
