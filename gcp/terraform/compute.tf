# Two hosts, no public addresses, Shielded VM, OS Login, each with its own service account.
#
# sut-host:     backend + agent (pid: service:backend, so the agent MUST live here) + the three
#               gateways + the JWKS relay: fixtures/compose/compose.yaml with
#               gcp/compose.sut-host.yaml on top (no vault, no loadgen; gcp validation profile).
# control-host: the orchestrator. Asks its metadata server for ID tokens (audience =
#               var.secure_path_audience) and calls the secure-path; scrapes the obs-path; runs
#               `pytest --gcp` with /etc/observastack/gcp.toml.

resource "google_compute_instance" "sut_host" {
  #checkov:skip=CKV_GCP_38:Boot disk encrypted with Google-managed keys; a CSEK/CMEK (KMS) is out of scope for a teaching testbed holding no user data (docs/gcp.md, gaps).
  name                      = "${var.name_prefix}-sut-host"
  machine_type              = var.sut_machine_type
  zone                      = var.zone
  tags                      = [local.sut_tag]
  labels                    = merge(local.labels, { role = "sut-host" })
  can_ip_forward            = false
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = var.image
      size  = 30
      type  = "pd-balanced"
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.hosts.id
    network_ip = google_compute_address.sut_host.address
    # no access_config block: no public IP
  }

  service_account {
    email  = google_service_account.sut_host.email
    scopes = ["https://www.googleapis.com/auth/cloud-platform"] # IAM roles decide (iam.tf)
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    serial-port-enable     = "FALSE"
  }

  metadata_startup_script = templatefile("${path.module}/templates/sut-host-startup.sh.tftpl", {
    repo_url       = var.source_repo_url
    repo_ref       = var.source_ref
    audience       = var.secure_path_audience
    allowed_caller = local.allowed_caller
    bind_ip        = local.sut_ip
    user_port      = var.user_path_port
    secure_port    = var.secure_path_port
    obs_port       = var.obs_path_port
  })

  depends_on = [google_compute_router_nat.egress]
}

resource "google_compute_instance" "control_host" {
  #checkov:skip=CKV_GCP_38:Boot disk encrypted with Google-managed keys; a CSEK/CMEK (KMS) is out of scope for a teaching testbed holding no user data (docs/gcp.md, gaps).
  name                      = "${var.name_prefix}-control-host"
  machine_type              = var.control_machine_type
  zone                      = var.zone
  tags                      = [local.control_tag]
  labels                    = merge(local.labels, { role = "control-host" })
  can_ip_forward            = false
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = var.image
      size  = 20
      type  = "pd-balanced"
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.hosts.id
    network_ip = google_compute_address.control_host.address
    # no access_config block: no public IP
  }

  service_account {
    email  = google_service_account.control_host.email
    scopes = ["https://www.googleapis.com/auth/cloud-platform"] # IAM roles decide (iam.tf)
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    serial-port-enable     = "FALSE"
  }

  metadata_startup_script = templatefile("${path.module}/templates/control-host-startup.sh.tftpl", {
    repo_url = var.source_repo_url
    repo_ref = var.source_ref
    settings = local.gcp_settings
  })

  depends_on = [google_compute_router_nat.egress]
}
