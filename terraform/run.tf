# The seven Cloud Run functions (DESIGN.md "Runtime on Google Cloud"): embedding, and the six
# that read its features (category, duplicate, quality, score, people, style) as one resource
# with for_each over local.function_services, where each one's settings are spelled out;
# .ci/check_settings.py checks them against what the binaries read (shared/src/config/).
#
# embedding is a resource of its own because the others' EMBEDDING_URL is its uri, and a
# resource cannot refer to itself (Terraform: "Self-referential block").
#
# Every service: a second container, the Managed Service for Prometheus sidecar, which sends
# the function's /metrics to Cloud Monitoring (the dashboard and the PromQL alerts read them);
# its own service account (iam.tf), IAM-only (no allUsers invoker), ingress
# var.ingress (internal only by default), Direct VPC egress with ALL traffic through the VPC
# (Memorystore, internal calls to embedding, Gemini through Cloud NAT), and instance-based
# billing with startup CPU boost.
#
# Billing: instance-based (cpu_idle = false on both containers): an instance has its CPU from
# start to shutdown, not only while a request is in flight. The metrics sidecar scrapes and
# exports on its own schedule, and the work a function starts in the background at start-up
# (embedding the taxonomy's prompts for category and quality) runs while no request is in
# flight; request-based billing (cpu_idle = true) throttles both between requests, so metrics
# arrive late or not at all. The cost: an instance is billed while idle too (docs/deploy.md).
#
# Images: the services are created with var.bootstrap_image; Cloud Build deploys Ongi's images
# (gcloud run deploy --image) and Terraform ignores the image from then on, so an apply never
# rolls a service back to an old image. It also ignores traffic, so a traffic split made for a
# rollback (docs/deploy.md) survives the next apply.
#
# Settings: PORT and K_SERVICE are set by Cloud Run and never here. ORT_DYLIB_PATH comes from
# the image (functions/Dockerfile), which knows where it put the library. REDIS_URL and
# GEMINI_API_KEY come from Secret Manager.

locals {
  # Photos being decoded at once may take a quarter of a function's memory
  # (ONGI_DECODE_MEMORY_MB, at least 16 MiB): the rest is the models, the process and its
  # requests. 512Mi gives 128, 2Gi 512, 4Gi 1024.
  service_memory_mib = {
    for name, s in var.services : name => (
      tonumber(regex("^[0-9]+", s.memory)) * (length(regexall("Gi$", s.memory)) > 0 ? 1024 : 1)
    )
  }
  decode_memory_mb = { for name, mib in local.service_memory_mib : name => tostring(max(16, floor(mib / 4))) }
}

locals {
  # Per function: its description, its plain env vars (env) and its env vars from Secret
  # Manager (secrets: name => secret id, version "latest"). Everything else is the same.
  function_services = {
    category = {
      description = "Ongi category: Album categories from CLIP; per-photo step fed by ongi-features."
      env = {
        ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["category"]
        ONGI_LOG_FORMAT       = "json"
        ONGI_STORAGE          = "gcs"
        ONGI_BUCKET           = google_storage_bucket.uploads.name
        GOOGLE_CLOUD_PROJECT  = var.project_id
        ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
        ONGI_MODEL_DIR        = local.model_dir
        EMBEDDING_URL         = google_cloud_run_v2_service.embedding.uri
      }
      secrets = {
        REDIS_URL = google_secret_manager_secret.redis_url.secret_id
      }
    }
    duplicate = {
      description = "Ongi duplicate: Duplicate groups (pHash + CLIP) and the keeper of each group."
      env = {
        ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["duplicate"]
        ONGI_LOG_FORMAT       = "json"
        ONGI_STORAGE          = "gcs"
        ONGI_BUCKET           = google_storage_bucket.uploads.name
        GOOGLE_CLOUD_PROJECT  = var.project_id
        ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
        ONGI_MODEL_DIR        = local.model_dir
        EMBEDDING_URL         = google_cloud_run_v2_service.embedding.uri
      }
      secrets = {
        REDIS_URL = google_secret_manager_secret.redis_url.secret_id
      }
    }
    quality = {
      description = "Ongi quality: Blurry and badly exposed photos; per-photo step fed by ongi-features."
      env = {
        ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["quality"]
        ONGI_LOG_FORMAT       = "json"
        ONGI_STORAGE          = "gcs"
        ONGI_BUCKET           = google_storage_bucket.uploads.name
        GOOGLE_CLOUD_PROJECT  = var.project_id
        ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
        ONGI_MODEL_DIR        = local.model_dir
        EMBEDDING_URL         = google_cloud_run_v2_service.embedding.uri
      }
      secrets = {
        REDIS_URL = google_secret_manager_secret.redis_url.secret_id
      }
    }
    score = {
      description = "Ongi score: Best shots per category (aesthetic head); per-photo step fed by ongi-features."
      env = {
        ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["score"]
        ONGI_LOG_FORMAT       = "json"
        ONGI_STORAGE          = "gcs"
        ONGI_BUCKET           = google_storage_bucket.uploads.name
        GOOGLE_CLOUD_PROJECT  = var.project_id
        ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
        ONGI_MODEL_DIR        = local.model_dir
        EMBEDDING_URL         = google_cloud_run_v2_service.embedding.uri
      }
      secrets = {
        REDIS_URL = google_secret_manager_secret.redis_url.secret_id
      }
    }
    people = {
      description = "Ongi people: Faces and the people in an album; per-photo step fed by ongi-features."
      env = {
        ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["people"]
        ONGI_LOG_FORMAT       = "json"
        ONGI_STORAGE          = "gcs"
        ONGI_BUCKET           = google_storage_bucket.uploads.name
        GOOGLE_CLOUD_PROJECT  = var.project_id
        ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
        ONGI_MODEL_DIR        = local.model_dir
        EMBEDDING_URL         = google_cloud_run_v2_service.embedding.uri
        ONGI_FACE_DETECTOR    = var.face_detector
      }
      secrets = {
        REDIS_URL = google_secret_manager_secret.redis_url.secret_id
      }
    }
    style = {
      description = "Ongi style: Style jobs: Gemini writes the prompt, the GPU worker runs img2img."
      env = {
        ONGI_DECODE_MEMORY_MB = local.decode_memory_mb["style"]
        ONGI_LOG_FORMAT       = "json"
        ONGI_STORAGE          = "gcs"
        ONGI_BUCKET           = google_storage_bucket.uploads.name
        GOOGLE_CLOUD_PROJECT  = var.project_id
        ONGI_CACHE_TTL_SECS   = local.cache_ttl_secs
        ONGI_RESULTS_BUCKET   = google_storage_bucket.results.name
        GEMINI_MODEL          = var.gemini_model
      }
      secrets = {
        REDIS_URL      = google_secret_manager_secret.redis_url.secret_id
        GEMINI_API_KEY = google_secret_manager_secret.gemini_api_key.secret_id
      }
    }
  }
}

# --- embedding: CLIP embeddings and pixel features per photo; upload events (flow A) and /batch/reprocess.
resource "google_cloud_run_v2_service" "embedding" {
  name                = local.service_names["embedding"]
  location            = var.region
  description         = "Ongi embedding: CLIP embeddings and pixel features per photo; upload events (flow A) and /batch/reprocess."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["embedding"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["embedding"].concurrency
    timeout                          = "${var.services["embedding"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["embedding"].min_instances
      max_instance_count = var.services["embedding"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "embedding"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["embedding"].cpu
          memory = var.services["embedding"].memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }

      env {
        name  = "ONGI_LOG_FORMAT"
        value = "json"
      }

      env {
        name  = "ONGI_DECODE_MEMORY_MB"
        value = local.decode_memory_mb["embedding"]
      }

      env {
        name  = "ONGI_STORAGE"
        value = "gcs"
      }

      env {
        name  = "ONGI_BUCKET"
        value = google_storage_bucket.uploads.name
      }

      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project_id
      }

      env {
        name  = "ONGI_CACHE_TTL_SECS"
        value = local.cache_ttl_secs
      }

      env {
        name  = "ONGI_MODEL_DIR"
        value = local.model_dir
      }

      env {
        name  = "ONGI_FEATURES_TOPIC"
        value = google_pubsub_topic.features.name
      }

      env {
        name = "REDIS_URL"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.redis_url.secret_id
            version = "latest"
          }
        }
      }
    }

    # Managed Service for Prometheus: scrapes this instance's /metrics on port 8080 (the
    # sidecar's default) and writes the series to Cloud Monitoring as the service's identity
    # (roles/monitoring.metricWriter, iam.tf). Instance-based billing like the function's
    # container (cpu_idle = false), so it keeps its CPU between requests.
    containers {
      name       = "metrics-collector"
      image      = var.metrics_sidecar_image
      depends_on = ["embedding"]

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
        cpu_idle = false
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      traffic,
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

# --- The six functions that read embedding's features: one resource, settings in
# local.function_services (above).
resource "google_cloud_run_v2_service" "function" {
  for_each = local.function_services

  name                = local.service_names[each.key]
  location            = var.region
  description         = each.value.description
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function[each.key].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services[each.key].concurrency
    timeout                          = "${var.services[each.key].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services[each.key].min_instances
      max_instance_count = var.services[each.key].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = each.key
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services[each.key].cpu
          memory = var.services[each.key].memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }

      dynamic "env" {
        for_each = each.value.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = each.value.secrets
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

    # Managed Service for Prometheus: scrapes this instance's /metrics on port 8080 (the
    # sidecar's default) and writes the series to Cloud Monitoring as the service's identity
    # (roles/monitoring.metricWriter, iam.tf). Instance-based billing like the function's
    # container (cpu_idle = false), so it keeps its CPU between requests.
    containers {
      name       = "metrics-collector"
      image      = var.metrics_sidecar_image
      depends_on = [each.key]

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
        cpu_idle = false
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      traffic,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.redis_url,
    google_secret_manager_secret_iam_member.gemini_api_key,
    google_secret_manager_secret_version.redis_url,
  ]
}

# The six used to be one resource each.

moved {
  from = google_cloud_run_v2_service.category
  to   = google_cloud_run_v2_service.function["category"]
}

moved {
  from = google_cloud_run_v2_service.duplicate
  to   = google_cloud_run_v2_service.function["duplicate"]
}

moved {
  from = google_cloud_run_v2_service.quality
  to   = google_cloud_run_v2_service.function["quality"]
}

moved {
  from = google_cloud_run_v2_service.score
  to   = google_cloud_run_v2_service.function["score"]
}

moved {
  from = google_cloud_run_v2_service.people
  to   = google_cloud_run_v2_service.function["people"]
}

moved {
  from = google_cloud_run_v2_service.style
  to   = google_cloud_run_v2_service.function["style"]
}
