variable "project_id" {
  description = "The GCP project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the subnet, the router and the NAT."
  type        = string
  default     = "europe-west1"
}

variable "zone" {
  description = "Zone of both hosts (the agent must share the SUT's host anyway)."
  type        = string
  default     = "europe-west1-b"
}

variable "name_prefix" {
  description = "Prefix of every resource name and network tag."
  type        = string
  default     = "observastack"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name_prefix))
    error_message = "name_prefix: 2-20 characters, lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "subnet_cidr" {
  description = "Primary range of the hosts' subnet."
  type        = string
  default     = "10.42.0.0/24"
  validation {
    condition     = can(cidrhost(var.subnet_cidr, 32))
    error_message = "subnet_cidr must be an IPv4 CIDR with room for at least 32 hosts."
  }
}

variable "loadgen_source_ranges" {
  description = "CIDR ranges of the load generators: the only sources (besides the control host) allowed on the user-path."
  type        = list(string)
  validation {
    condition     = length(var.loadgen_source_ranges) > 0 && alltrue([for r in var.loadgen_source_ranges : can(cidrhost(r, 0))])
    error_message = "loadgen_source_ranges must list at least one IPv4 CIDR range."
  }
  validation {
    condition     = !contains(var.loadgen_source_ranges, "0.0.0.0/0")
    error_message = "loadgen_source_ranges must name the load generators, not 0.0.0.0/0: the SUT host has no public address; expose the user-path through a load balancer if the internet must reach it."
  }
}

variable "secure_path_audience" {
  description = "The audience every secure-path token must carry (aud), and what the control host asks the metadata server for."
  type        = string
  default     = "observastack-secure-path"
  validation {
    condition     = can(regex("^[^\\s,]{1,200}$", var.secure_path_audience))
    error_message = "secure_path_audience: one string, no spaces or commas."
  }
}

variable "allowed_caller_email" {
  description = "The one service-account e-mail the verifiers accept (OBSERVASTACK_JWT_ALLOWED_SUBJECTS). Empty: the control host's own service account."
  type        = string
  default     = ""
  validation {
    condition     = var.allowed_caller_email == "" || can(regex("^[^@\\s,]+@[^@\\s,]+$", var.allowed_caller_email))
    error_message = "allowed_caller_email must be empty or one e-mail address."
  }
}

variable "user_path_port" {
  description = "Port of the user-path (user-gateway) on the SUT host."
  type        = number
  default     = 8080
}

variable "secure_path_port" {
  description = "Port of the secure-path (secure-gateway) on the SUT host."
  type        = number
  default     = 8443
}

variable "obs_path_port" {
  description = "Port of the observability-path (obs-gateway) on the SUT host."
  type        = number
  default     = 9090
}

variable "iap_ssh" {
  description = "Allow SSH (OS Login) to both hosts through Identity-Aware Proxy TCP forwarding only."
  type        = bool
  default     = true
}

variable "sut_machine_type" {
  description = "Machine type of the SUT host (backend, agent, three gateways)."
  type        = string
  default     = "e2-standard-2"
}

variable "control_machine_type" {
  description = "Machine type of the control host (orchestrator, pytest --gcp)."
  type        = string
  default     = "e2-small"
}

variable "image" {
  description = "Boot image of both hosts (must support Shielded VM)."
  type        = string
  default     = "debian-cloud/debian-12"
}

variable "source_repo_url" {
  description = "Git URL of the ObservaStack checkout both hosts install."
  type        = string
}

variable "source_ref" {
  description = "Branch, tag or commit of source_repo_url to deploy."
  type        = string
  default     = "main"
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}
