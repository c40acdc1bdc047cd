# Terraform and provider versions, and the state backend.
#
# Only syntax that Terraform 1.0 to 1.11 parses is used here (no import/removed/check blocks,
# no provider-defined functions), so the offline checks in .ci/iac-check can run with any of
# them. The state lives in a GCS bucket created once by hand (docs/deploy.md, "Bootstrap"):
#
#   terraform init -backend-config="bucket=<project>-tfstate" -backend-config="prefix=ongi/dev"

terraform {
  required_version = ">= 1.3.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
