# What the rest of the deployment needs: Cloud Build's substitutions, the app backend's
# URLs and buckets, and the identities to wire up.

output "service_urls" {
  description = "URL of each Cloud Run function (the audience of its ID tokens)."
  value = {
    embedding = google_cloud_run_v2_service.embedding.uri
    category  = google_cloud_run_v2_service.function["category"].uri
    duplicate = google_cloud_run_v2_service.function["duplicate"].uri
    quality   = google_cloud_run_v2_service.function["quality"].uri
    score     = google_cloud_run_v2_service.function["score"].uri
    people    = google_cloud_run_v2_service.function["people"].uri
    style     = google_cloud_run_v2_service.function["style"].uri
  }
}

output "buckets" {
  description = "The uploads, results, models and build-source buckets."
  value = {
    uploads      = google_storage_bucket.uploads.name
    results      = google_storage_bucket.results.name
    models       = google_storage_bucket.models.name
    build_source = google_storage_bucket.build_source.name
  }
}

output "build_source_staging_dir" {
  description = "The --gcs-source-staging-dir of `gcloud builds submit` as the deployer (docs/deploy.md §4): a bucket the deployer can read."
  value       = "gs://${google_storage_bucket.build_source.name}/source"
}

output "topics" {
  description = "The Pub/Sub topics (ongi-results is the app backend's to subscribe to, with ongi-results-dead-letter as its dead-letter topic)."
  value = {
    features             = google_pubsub_topic.features.name
    features_dead_letter = google_pubsub_topic.features_dead_letter.name
    results              = google_pubsub_topic.results.name
    results_dead_letter  = google_pubsub_topic.results_dead_letter.name
  }
}

output "image_repository" {
  description = "Artifact Registry path the images are pushed to."
  value       = local.image_repository
}

output "deployer_service_account" {
  description = "The service account to run Cloud Build triggers as (cloudbuild/README.md)."
  value       = google_service_account.deployer.email
}

output "function_service_accounts" {
  description = "Service account of each function."
  value       = { for f in local.functions : f => google_service_account.function[f].email }
}

output "gpu_worker" {
  description = "The GPU worker's managed instance group and zone (Cloud Build's _GPU_MIG and _GPU_ZONE), and the repository its image comes from (Cloud Build sets the digest it runs: docs/deploy.md)."
  value = {
    instance_group = google_compute_instance_group_manager.gpu_job.name
    zone           = var.gpu_zone
    repository     = "${local.image_repository}/gpu-job"
  }
}

output "redis_host" {
  description = "Private address of Memorystore (the full URL with its AUTH string is in the redis-url secret)."
  value       = "${google_redis_instance.cache.host}:${google_redis_instance.cache.port}"
}

output "secrets" {
  description = "Secret Manager secrets: add the Gemini API key as a version of gemini_api_key."
  value = {
    redis_url      = google_secret_manager_secret.redis_url.secret_id
    gemini_api_key = google_secret_manager_secret.gemini_api_key.secret_id
  }
}

output "cloudbuild_substitutions" {
  description = "The --substitutions for cloudbuild/cloudbuild.yaml in this environment."
  value = join(",", [
    "_ENV=${var.env}",
    "_REGION=${var.region}",
    "_REPOSITORY=${var.repository_id}",
    "_SERVICE_PREFIX=${var.service_prefix}",
    "_REPROCESS_JOB=${google_cloud_run_v2_job.reprocess.name}",
    "_MODELS_BUCKET=${google_storage_bucket.models.name}",
    "_GPU_MIG=${google_compute_instance_group_manager.gpu_job.name}",
    "_GPU_ZONE=${var.gpu_zone}",
  ])
}
