# Flow D: Cloud Scheduler calls POST /batch/reprocess on the embedding service with an OIDC
# token. The embedding service recomputes what is stale for the deployed model versions and
# publishes to ongi-features, which fans out to the per-photo steps. The call is resumable
# and safe to repeat, so one retry is enough. Created paused unless reprocess_enabled.

resource "google_cloud_scheduler_job" "reprocess" {
  name             = "${local.name}-reprocess"
  region           = var.region
  description      = "Ongi batch reprocessing of the uploads bucket (POST /batch/reprocess)"
  schedule         = var.reprocess_schedule
  time_zone        = var.reprocess_time_zone
  paused           = !var.reprocess_enabled
  attempt_deadline = "1800s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "300s"
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloud_run_v2_service.embedding.uri}/batch/reprocess"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode(jsonencode({
      bucket = google_storage_bucket.uploads.name
      prefix = var.reprocess_prefix
    }))

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloud_run_v2_service.embedding.uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invoker]
}
