# Flow A: a finalized object in the uploads bucket becomes a CloudEvent that Eventarc
# delivers to the embedding service's POST /events/storage, authenticated as the Eventarc
# identity. Delivery is at least once: the embedding function makes a repeat a cache hit.

resource "google_eventarc_trigger" "uploads" {
  name     = "${local.name}-uploads-finalized"
  location = var.region

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.uploads.name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.embedding.name
      region  = var.region
      path    = "/events/storage"
    }
  }

  service_account = google_service_account.eventarc.email
  labels          = local.labels

  depends_on = [
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.gcs_agent_publisher,
    google_cloud_run_v2_service_iam_member.eventarc_invoker,
  ]
}
