# Flow D: batch reprocessing as a Cloud Run job that runs `ongi reprocess` to the end.
#
# `POST /batch/reprocess` stops after its time budget (ONGI_REPROCESS_BUDGET_SECS, 50 s) and
# answers `complete: false` with its cursor saved; a scheduler calling it once a day would
# leave a large bucket unfinished forever. The job runs the same walk (shared/src/pipeline/
# reprocess/) from the `ongi` CLI, which chains calls of one budget each until the walk is
# complete, for up to var.reprocess_task_timeout_seconds; a run cut off there, or retried,
# resumes from the cursor in Redis. Like the embedding service's walk, it computes features
# (`--steps embedding`) and announces each photo on ongi-features, where the per-photo
# functions pick it up.
#
# The job runs the embedding image (the `ongi` binary is in it: functions/Dockerfile) as the
# embedding service's identity, with the same settings. Cloud Build updates its image on every
# deploy (gcloud run jobs update); Terraform ignores the image after creation. Cloud Scheduler
# starts it through the Cloud Run Admin API (jobs.run), created paused unless
# reprocess_enabled; run it by hand with `gcloud run jobs execute` (docs/deploy.md).

resource "google_cloud_run_v2_job" "reprocess" {
  name                = "${local.name}-reprocess"
  location            = var.region
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1
    labels      = local.labels

    template {
      service_account = google_service_account.function["embedding"].email
      timeout         = "${var.reprocess_task_timeout_seconds}s"
      max_retries     = 1

      vpc_access {
        egress = "ALL_TRAFFIC"
        network_interfaces {
          network    = google_compute_network.main.id
          subnetwork = google_compute_subnetwork.main.id
        }
      }

      containers {
        image   = var.bootstrap_image
        command = ["/usr/local/bin/ongi"]
        args    = ["reprocess", "--steps", "embedding", "--prefix", var.reprocess_prefix]

        resources {
          limits = {
            cpu    = var.services["embedding"].cpu
            memory = var.services["embedding"].memory
          }
        }

        dynamic "env" {
          for_each = local.reprocess_job_env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = local.reprocess_job_secrets
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value
                version = "latest"
              }
            }
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.redis_url,
    google_pubsub_topic_iam_member.features_publisher,
    google_secret_manager_secret_version.redis_url,
  ]
}

locals {
  # The job's settings: the embedding service's, plus what a job (no K_SERVICE) must be told.
  # Checked by .ci/check_settings.py like the services' env.
  reprocess_job_env = {
    ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["embedding"]
    ONGI_LOG_FORMAT       = "json"
    ONGI_STORAGE          = "gcs"
    ONGI_BUCKET           = google_storage_bucket.uploads.name
    GOOGLE_CLOUD_PROJECT  = var.project_id
    ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
    ONGI_MODEL_DIR        = local.model_dir
    ONGI_FEATURES_TOPIC   = google_pubsub_topic.features.name
    ONGI_PUBLISH          = "true"
  }
  reprocess_job_secrets = {
    REDIS_URL = google_secret_manager_secret.redis_url.secret_id
  }
}

resource "google_cloud_scheduler_job" "reprocess" {
  name             = "${local.name}-reprocess"
  region           = var.region
  description      = "Ongi batch reprocessing of the uploads bucket: starts the Cloud Run job ${google_cloud_run_v2_job.reprocess.name}"
  schedule         = var.reprocess_schedule
  time_zone        = var.reprocess_time_zone
  paused           = !var.reprocess_enabled
  attempt_deadline = "60s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.reprocess.name}:run"

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler_runs_reprocess]
}
