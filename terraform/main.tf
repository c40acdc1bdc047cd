# Names and values shared by every file of this module.

data "google_project" "this" {
  project_id = var.project_id
}

# The Cloud Storage service agent, which publishes the uploads bucket's notifications (uploads.tf).
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

locals {
  name = "${var.name_prefix}-${var.env}"

  labels = merge(var.labels, {
    app = "ongi"
    env = var.env
  })

  # The seven Cloud Run functions (DESIGN.md "Runtime on Google Cloud").
  functions = ["embedding", "category", "duplicate", "quality", "score", "people", "style"]

  # The functions with a per-photo step fed by the ongi-features topic.
  per_photo_functions = ["category", "quality", "score", "people"]

  # Cloud Run service names: "<service_prefix><function>", e.g. "ongi-embedding".
  service_names = { for f in local.functions : f => "${var.service_prefix}${f}" }

  uploads_bucket = var.uploads_bucket_name != "" ? var.uploads_bucket_name : "${var.project_id}-${var.env}-uploads"
  results_bucket = var.results_bucket_name != "" ? var.results_bucket_name : "${var.project_id}-${var.env}-results"
  models_bucket  = var.models_bucket_name != "" ? var.models_bucket_name : "${var.project_id}-${var.env}-models"

  # Where `gcloud builds submit` stages the source of a build run by hand (docs/deploy.md §4).
  build_source_bucket = "${var.project_id}-${var.env}-build-source"

  image_repository = "${var.region}-docker.pkg.dev/${var.project_id}/${var.repository_id}"

  # Where the images keep their model folder (functions/Dockerfile, gpu-job/Dockerfile).
  model_dir = "/opt/ongi/models"

  cache_ttl_secs = tostring(var.cache_ttl_days * 86400)

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
