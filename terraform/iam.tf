# Service accounts and least-privilege grants (terraform/README.md has the table).
# Every runtime identity gets only what its code path uses, on the resource itself
# (bucket, topic, secret, service) rather than on the project wherever a resource-level
# binding exists. The only project-level grants: writing logs, metrics and traces, and the
# deployer's custom role on instance groups (which have no resource-level IAM).

# --- Identities -----------------------------------------------------------------------------

resource "google_service_account" "function" {
  for_each = toset(local.functions)

  account_id   = "${local.name}-${each.key}"
  display_name = "Ongi ${var.env} Cloud Run function ${each.key}"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "gpu_job" {
  account_id   = "${local.name}-gpu-job"
  display_name = "Ongi ${var.env} GPU worker"

  depends_on = [google_project_service.apis]
}

# Pub/Sub push subscriptions sign their requests with this identity's OIDC token.
resource "google_service_account" "push" {
  account_id   = "${local.name}-push"
  display_name = "Ongi ${var.env} Pub/Sub push to the functions"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  account_id   = "${local.name}-scheduler"
  display_name = "Ongi ${var.env} Cloud Scheduler batch reprocessing"

  depends_on = [google_project_service.apis]
}

# Cloud Build runs cloudbuild/cloudbuild.yaml as this identity.
resource "google_service_account" "deployer" {
  account_id   = "${local.name}-deployer"
  display_name = "Ongi ${var.env} Cloud Build deployer"

  depends_on = [google_project_service.apis]
}

locals {
  # Every runtime identity, keyed by a name known at plan time (for_each keys cannot be
  # e-mail addresses that only exist after apply).
  runtime_accounts = merge(
    { for f in local.functions : f => google_service_account.function[f].email },
    { "gpu-job" = google_service_account.gpu_job.email },
  )

  # The functions that call the embedding service for missing features (EMBEDDING_URL).
  embedding_callers = ["category", "duplicate", "quality", "score", "people"]

  # The processes that publish results for the app backend on ongi-results.
  results_publishers = ["category", "duplicate", "quality", "score", "people", "gpu-job"]
}

# --- Runtime identities: telemetry (the only project-level grants) -------------------------

resource "google_project_iam_member" "runtime_log_writer" {
  for_each = local.runtime_accounts

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${each.value}"
}

resource "google_project_iam_member" "runtime_metric_writer" {
  for_each = local.runtime_accounts

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${each.value}"
}

resource "google_project_iam_member" "runtime_trace_agent" {
  for_each = local.runtime_accounts

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = "serviceAccount:${each.value}"
}

# --- Storage ----------------------------------------------------------------------------------

# Every function and the worker read photos (and list them for /batch/reprocess).
resource "google_storage_bucket_iam_member" "uploads_read" {
  for_each = local.runtime_accounts

  bucket = google_storage_bucket.uploads.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${each.value}"
}

# The worker writes style results (style/<job id>.png). objectUser, not objectCreator: a
# retried or reclaimed job writes the same object again, and replacing an object needs
# storage.objects.delete, which objectCreator lacks (the retry would get 403). objectUser also
# reads and lists, so the worker needs no viewer grant here.
resource "google_storage_bucket_iam_member" "results_write_gpu" {
  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.gpu_job.email}"
}

# style reads the results to sign GET URLs.
resource "google_storage_bucket_iam_member" "results_read" {
  for_each = toset(["style"])

  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.runtime_accounts[each.key]}"
}

# --- Images -----------------------------------------------------------------------------------

# The GPU worker's VM pulls gpu-job with its own identity (docker-credential-gcr uses the VM's
# service account), so that identity must read the repository: without it every pull is a 403
# and the startup script retries forever. Cloud Run services and jobs pull with the Cloud Run
# service agent, which reads Artifact Registry in its own project without a grant.
resource "google_artifact_registry_repository_iam_member" "gpu_job_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.gpu_job.email}"
}

# Signed URLs on Cloud Run are signed with the IAM signBlob API, as the service itself.
resource "google_service_account_iam_member" "style_signs_urls" {
  service_account_id = google_service_account.function["style"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.function["style"].email}"
}

# --- Secrets ----------------------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "redis_url" {
  for_each = local.runtime_accounts

  secret_id = google_secret_manager_secret.redis_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value}"
}

resource "google_secret_manager_secret_iam_member" "gemini_api_key" {
  secret_id = google_secret_manager_secret.gemini_api_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["style"].email}"
}

# --- Pub/Sub ----------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "features_publisher" {
  topic  = google_pubsub_topic.features.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function["embedding"].email}"
}

resource "google_pubsub_topic_iam_member" "results_publisher" {
  for_each = toset(local.results_publishers)

  topic  = google_pubsub_topic.results.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.runtime_accounts[each.key]}"
}

# The Pub/Sub service agent mints the push identity's OIDC tokens...
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# ...forwards undeliverable messages to the dead-letter topic, and acknowledges them on the
# source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = {
    features = google_pubsub_topic.features_dead_letter.id
    uploads  = google_pubsub_topic.uploads_dead_letter.id
  }

  topic  = each.value
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

moved {
  from = google_pubsub_topic_iam_member.dead_letter_publisher
  to   = google_pubsub_topic_iam_member.dead_letter_publisher["features"]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = merge(google_pubsub_subscription.features, { uploads = google_pubsub_subscription.uploads })

  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Cloud Run invokers ---------------------------------------------------------------------

# The app backend (var.invoker_members) calls every function.
resource "google_cloud_run_v2_service_iam_member" "app_invokers" {
  for_each = {
    for pair in setproduct(local.functions, var.invoker_members) : "${pair[0]} ${pair[1]}" => {
      function = pair[0]
      member   = pair[1]
    }
  }

  location = var.region
  name     = local.service_names[each.value.function]
  role     = "roles/run.invoker"
  member   = each.value.member

  depends_on = [
    google_cloud_run_v2_service.embedding,
    google_cloud_run_v2_service.function,
  ]
}

# The analyses ask the embedding service for features missing from the cache.
resource "google_cloud_run_v2_service_iam_member" "embedding_callers" {
  for_each = toset(local.embedding_callers)

  location = var.region
  name     = google_cloud_run_v2_service.embedding.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

# Pub/Sub pushes ongi-features to the per-photo steps.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = toset(local.per_photo_functions)

  location = var.region
  name     = local.service_names[each.key]
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"

  depends_on = [
    google_cloud_run_v2_service.function,
  ]
}

# Pub/Sub pushes the uploads bucket's notifications to embedding (flow A, uploads.tf).
resource "google_cloud_run_v2_service_iam_member" "push_invoker_embedding" {
  location = var.region
  name     = google_cloud_run_v2_service.embedding.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

# Cloud Scheduler starts the batch reprocessing job (scheduler.tf): run.jobs.run on that job
# only (roles/run.invoker on a job grants it).
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_reprocess" {
  location = google_cloud_run_v2_job.reprocess.location
  name     = google_cloud_run_v2_job.reprocess.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- The Cloud Build deployer -----------------------------------------------------------------

resource "google_artifact_registry_repository_iam_member" "deployer_push" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_storage_bucket_iam_member" "deployer_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.deployer.email}"
}

# ...read the source that `gcloud builds submit` staged for it (a build run as a user-chosen
# service account fetches its source as that account; storage.tf)...
resource "google_storage_bucket_iam_member" "deployer_build_source" {
  bucket = google_storage_bucket.build_source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.deployer.email}"
}

# Who runs `gcloud builds submit` by hand: gcloud reads the staging bucket's metadata
# (storage.buckets.get: legacyBucketReader) and uploads the source (objectUser), and the
# build runs as the deployer (serviceAccountUser on it). Owners and Editors have all three.
resource "google_storage_bucket_iam_member" "submitters_build_source" {
  for_each = {
    for pair in setproduct(["roles/storage.objectUser", "roles/storage.legacyBucketReader"], var.build_submitters) :
    "${pair[0]} ${pair[1]}" => { role = pair[0], member = pair[1] }
  }

  bucket = google_storage_bucket.build_source.name
  role   = each.value.role
  member = each.value.member
}

resource "google_service_account_iam_member" "submitters_act_as_deployer" {
  for_each = toset(var.build_submitters)

  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

resource "google_project_iam_member" "deployer_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

# Deploy new revisions of the seven services (and nothing else in Cloud Run)...
resource "google_cloud_run_v2_service_iam_member" "deployer" {
  for_each = toset(local.functions)

  location = var.region
  name     = local.service_names[each.key]
  role     = "roles/run.developer"
  member   = "serviceAccount:${google_service_account.deployer.email}"

  depends_on = [
    google_cloud_run_v2_service.embedding,
    google_cloud_run_v2_service.function,
  ]
}

# ...update the batch reprocessing job's image (gcloud run jobs update)...
resource "google_cloud_run_v2_job_iam_member" "deployer_reprocess" {
  location = google_cloud_run_v2_job.reprocess.location
  name     = google_cloud_run_v2_job.reprocess.name
  role     = "roles/run.developer"
  member   = "serviceAccount:${google_service_account.deployer.email}"
}

# ...running as their own identities...
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = merge(
    { for f in local.functions : f => google_service_account.function[f].name },
    { "gpu-job" = google_service_account.gpu_job.name },
  )

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deployer.email}"
}

# ...and roll the GPU worker's instance group (a custom role: only the group, not instances).
resource "google_project_iam_custom_role" "gpu_roller" {
  role_id     = replace("${local.name}_gpu_roller", "-", "_")
  title       = "Ongi ${var.env} GPU worker roller"
  description = "Replace the VMs of the GPU worker's managed instance group (gcloud compute instance-groups managed rolling-action replace)."
  permissions = [
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
    "compute.instanceTemplates.get",
    "compute.instanceTemplates.useReadOnly",
    "compute.zoneOperations.get",
  ]
}

resource "google_project_iam_member" "deployer_gpu_roller" {
  project = var.project_id
  role    = google_project_iam_custom_role.gpu_roller.id
  member  = "serviceAccount:${google_service_account.deployer.email}"
}
