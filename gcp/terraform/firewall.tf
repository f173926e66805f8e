# The reachability contract of shared/DESIGN.md, as VPC firewall rules (ingress; egress is open
# for packages, images and Google's JWKS through NAT):
#
#   from \ to                  user-path   secure-path   obs-path   anything else on the hosts
#   load generators' ranges    yes         no            no         no
#   control host (its SA)      yes         yes (JWT)     yes        no
#   IAP TCP forwarding         SSH (22) to both hosts, OS Login, when var.iap_ssh
#   anyone else                no          no            no         no
#
# Sources and targets are service accounts, not network tags: tags can be set by anyone who may
# edit an instance, a service account only by someone who may act as it. The backend (8000), the
# agent (9000) and the relay have no host port at all (gcp/compose.sut-host.yaml), and no rule
# names them.

resource "google_compute_firewall" "user_path_from_loadgen" {
  name          = "${var.name_prefix}-user-path-from-loadgen"
  network       = google_compute_network.vpc.id
  description   = "user-path (/api/*) from the load generators"
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = var.loadgen_source_ranges

  target_service_accounts = [google_service_account.sut_host.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.user_path_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "user_path_from_control" {
  name        = "${var.name_prefix}-user-path-from-control"
  network     = google_compute_network.vpc.id
  description = "user-path from the control host (pytest --gcp runs user-path checks too)"
  direction   = "INGRESS"
  priority    = 1000

  source_service_accounts = [google_service_account.control_host.email]
  target_service_accounts = [google_service_account.sut_host.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.user_path_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "secure_path_from_control" {
  name        = "${var.name_prefix}-secure-path-from-control"
  network     = google_compute_network.vpc.id
  description = "secure-path (/config/*, /agent/*; JWT required) from the control host only"
  direction   = "INGRESS"
  priority    = 1000

  source_service_accounts = [google_service_account.control_host.email]
  target_service_accounts = [google_service_account.sut_host.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.secure_path_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "obs_path_from_control" {
  name        = "${var.name_prefix}-obs-path-from-control"
  network     = google_compute_network.vpc.id
  description = "observability-path (/metrics) from the control host only"
  direction   = "INGRESS"
  priority    = 1000

  source_service_accounts = [google_service_account.control_host.email]
  target_service_accounts = [google_service_account.sut_host.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.obs_path_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "ssh_from_iap" {
  count       = var.iap_ssh ? 1 : 0
  name        = "${var.name_prefix}-ssh-from-iap"
  network     = google_compute_network.vpc.id
  description = "SSH through IAP TCP forwarding only (OS Login decides who)"
  direction   = "INGRESS"
  priority    = 1000

  source_ranges = [local.iap_tcp_from]
  target_service_accounts = [
    google_service_account.sut_host.email,
    google_service_account.control_host.email,
  ]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# VPCs deny ingress implicitly; this rule says so explicitly, sits just above the implied one,
# and logs what it drops (probes of the control plane from anywhere show up here).
resource "google_compute_firewall" "deny_all_ingress" {
  name          = "${var.name_prefix}-deny-all-ingress"
  network       = google_compute_network.vpc.id
  description   = "nothing else reaches either host"
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
