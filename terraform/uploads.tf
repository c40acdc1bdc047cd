# Flow A: a finalized object in the uploads bucket becomes a Cloud Storage notification on the
# topic ongi-uploads, which a push subscription delivers to the embedding service's
# POST /events/storage (the Pub/Sub push envelope of a GCS notification), authenticated with
# an OIDC token of the push identity; until var.ongi_deployed it is a pull subscription that
# holds the notifications. Delivery is at least once: the embedding function makes
# a repeat a cache hit. A message that fails var.max_delivery_attempts deliveries goes to
# ongi-uploads-dead-letter (held 7 days by ongi-uploads-dead-letter-hold, watched by the
# dead-letter alert), like ongi-features' messages.
#
# Why not an Eventarc trigger: Eventarc's Cloud Storage trigger delivers through a Pub/Sub
# subscription that Eventarc creates and owns, and Terraform cannot give that subscription a
# dead-letter topic; an event that kept failing was retried for 7 days and then lost.

resource "google_pubsub_topic" "uploads" {
  name                       = "ongi-uploads"
  message_retention_duration = "86400s"
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "uploads_dead_letter" {
  name   = "ongi-uploads-dead-letter"
  labels = local.labels

  depends_on = [google_project_service.apis]
}

# The Cloud Storage service agent publishes the bucket's notifications.
resource "google_pubsub_topic_iam_member" "gcs_publishes_uploads" {
  topic  = google_pubsub_topic.uploads.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "uploads" {
  bucket         = google_storage_bucket.uploads.name
  payload_format = "JSON_API_V1"
  topic          = google_pubsub_topic.uploads.id
  event_types    = ["OBJECT_FINALIZE"]

  depends_on = [google_pubsub_topic_iam_member.gcs_publishes_uploads]
}

resource "google_pubsub_subscription" "uploads" {
  name  = "ongi-uploads-embedding"
  topic = google_pubsub_topic.uploads.id

  # How long Pub/Sub waits for embedding's response before it delivers again (one photo:
  # download, decode, CLIP, a cold start included): the service's request timeout, at most
  # Pub/Sub's 600 s (var.services' validation).
  ack_deadline_seconds       = min(600, var.services["embedding"].timeout_seconds)
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  # Push only once Ongi runs (var.ongi_deployed): the placeholder image (var.bootstrap_image)
  # answers 200 to anything, and the uploads it acknowledged would never be embedded. Until
  # then the notifications wait here (7 days); ongi_deployed = true makes the subscription
  # push in place, and it delivers them.
  dynamic "push_config" {
    for_each = var.ongi_deployed ? [1] : []
    content {
      push_endpoint = "${google_cloud_run_v2_service.embedding.uri}/events/storage"

      oidc_token {
        service_account_email = google_service_account.push.email
        audience              = google_cloud_run_v2_service.embedding.uri
      }
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.uploads_dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  labels = local.labels

  depends_on = [google_cloud_run_v2_service_iam_member.push_invoker_embedding]
}
