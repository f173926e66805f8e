# The ObservaStack two-host deployment on Google Cloud (see docs/gcp.md).
# Written for Terraform >= 1.5 and the google provider 6.x. It has NOT been applied from the
# machines this project is built on (no Terraform, no gcloud, no GCP credentials there): it is
# parsed and checked by tests/unit/gcp and linted with checkov.

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
  zone    = var.zone
}
