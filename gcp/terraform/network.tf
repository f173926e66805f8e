# One VPC, one subnet, no public addresses: the hosts reach the internet (packages, images,
# Google's JWKS) through Cloud NAT, and Google APIs through Private Google Access.

resource "google_compute_network" "vpc" {
  name                    = "${var.name_prefix}-vpc"
  auto_create_subnetworks = false # no default subnets, hence none of the default network's permissive rules
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "hosts" {
  name                     = "${var.name_prefix}-hosts"
  network                  = google_compute_network.vpc.id
  region                   = var.region
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_address" "sut_host" {
  name         = "${var.name_prefix}-sut-host"
  region       = var.region
  subnetwork   = google_compute_subnetwork.hosts.id
  address_type = "INTERNAL"
  address      = local.sut_ip
}

resource "google_compute_address" "control_host" {
  name         = "${var.name_prefix}-control-host"
  region       = var.region
  subnetwork   = google_compute_subnetwork.hosts.id
  address_type = "INTERNAL"
  address      = local.control_ip
}

resource "google_compute_router" "egress" {
  name    = "${var.name_prefix}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "egress" {
  name                               = "${var.name_prefix}-nat"
  router                             = google_compute_router.egress.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.hosts.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
