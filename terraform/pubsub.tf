# Pub/Sub (DESIGN.md "Runtime on Google Cloud", flow A):
#   ongi-features   published by embedding once a photo's features are cached; one push
#                   subscription per per-photo step (category, quality, score, people) to
#                   POST /events/features, authenticated with an OIDC token of the push
#                   identity (a pull subscription until var.ongi_deployed); undeliverable
#                   messages go to ongi-features-dead-letter.
#   ongi-results    per-photo and album results for the app backend, which owns its own
#                   subscriptions and should give them ongi-results-dead-letter.
# A dead-letter topic keeps nothing by itself: each has a pull subscription that holds the
# dead letters for 7 days, for inspection and replay, and that the dead-letter alert watches.

resource "google_pubsub_topic" "features" {
  name                       = "ongi-features"
  message_retention_duration = "86400s"
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "features_dead_letter" {
  name   = "ongi-features-dead-letter"
  labels = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "results" {
  name                       = "ongi-results"
  message_retention_duration = "86400s"
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "results_dead_letter" {
  name   = "ongi-results-dead-letter"
  labels = local.labels

  depends_on = [google_project_service.apis]
}

locals {
  per_photo_service_uri = {
    category = google_cloud_run_v2_service.function["category"].uri
    quality  = google_cloud_run_v2_service.function["quality"].uri
    score    = google_cloud_run_v2_service.function["score"].uri
    people   = google_cloud_run_v2_service.function["people"].uri
  }
}

resource "google_pubsub_subscription" "features" {
  for_each = local.per_photo_service_uri

  name  = "ongi-features-${each.key}"
  topic = google_pubsub_topic.features.id

  # For a push subscription the ack deadline is how long Pub/Sub waits for the HTTP response
  # before it delivers the message again: at least the service's request timeout, so a slow
  # photo is not computed twice. Pub/Sub allows at most 600 s (var.services' validation).
  ack_deadline_seconds       = min(600, var.services[each.key].timeout_seconds)
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  # Never expire for inactivity (a quiet week must not delete the subscription).
  expiration_policy {
    ttl = ""
  }

  # Push only once Ongi runs (var.ongi_deployed): until the first Cloud Build run the service
  # is var.bootstrap_image, which answers 200 to anything and would acknowledge the messages
  # unread. Until then this is a pull subscription that holds them (7 days); ongi_deployed =
  # true makes it push in place, and what it held is delivered.
  dynamic "push_config" {
    for_each = var.ongi_deployed ? [1] : []
    content {
      push_endpoint = "${each.value}/events/features"

      oidc_token {
        service_account_email = google_service_account.push.email
        audience              = each.value
      }
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.features_dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  labels = local.labels

  depends_on = [google_cloud_run_v2_service_iam_member.push_invoker]
}

# One per dead-letter topic: ongi-features-dead-letter-hold, ongi-results-dead-letter-hold and
# ongi-uploads-dead-letter-hold (uploads.tf's topic). monitoring.tf's dead-letter alert and
# dashboard watch every instance of this resource.
resource "google_pubsub_subscription" "dead_letters" {
  for_each = {
    features = google_pubsub_topic.features_dead_letter.id
    results  = google_pubsub_topic.results_dead_letter.id
    uploads  = google_pubsub_topic.uploads_dead_letter.id
  }

  name  = "ongi-${each.key}-dead-letter-hold"
  topic = each.value

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }

  labels = local.labels
}
