# The seven Cloud Run functions (DESIGN.md "Runtime on Google Cloud"), one resource each so
# that every service's settings are spelled out and .ci/check_settings.py can check them
# against what the binaries read (shared/src/config.rs).
#
# Every service: its own service account (iam.tf), IAM-only (no allUsers invoker), ingress
# var.ingress (internal only by default), Direct VPC egress with ALL traffic through the VPC
# (Memorystore, internal calls to embedding, Gemini through Cloud NAT), and request-based
# billing (CPU only during requests) with startup CPU boost.
#
# Images: the services are created with var.bootstrap_image; Cloud Build deploys Ongi's images
# (gcloud run deploy --image) and Terraform ignores the image from then on, so an apply never
# rolls a service back to an old image. It also ignores traffic, so a traffic split made for a
# rollback (docs/deploy.md) survives the next apply.
#
# Settings: PORT and K_SERVICE are set by Cloud Run and never here. ORT_DYLIB_PATH comes from
# the image (functions/Dockerfile), which knows where it put the library. REDIS_URL and
# GEMINI_API_KEY come from Secret Manager.

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
        cpu_idle          = true
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

# --- category: Album categories from CLIP; per-photo step fed by ongi-features.
resource "google_cloud_run_v2_service" "category" {
  name                = local.service_names["category"]
  location            = var.region
  description         = "Ongi category: Album categories from CLIP; per-photo step fed by ongi-features."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["category"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["category"].concurrency
    timeout                          = "${var.services["category"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["category"].min_instances
      max_instance_count = var.services["category"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "category"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["category"].cpu
          memory = var.services["category"].memory
        }
        cpu_idle          = true
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
        name  = "EMBEDDING_URL"
        value = google_cloud_run_v2_service.embedding.uri
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
    google_secret_manager_secret_version.redis_url,
  ]
}

# --- duplicate: Duplicate groups (pHash + CLIP) and the keeper of each group.
resource "google_cloud_run_v2_service" "duplicate" {
  name                = local.service_names["duplicate"]
  location            = var.region
  description         = "Ongi duplicate: Duplicate groups (pHash + CLIP) and the keeper of each group."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["duplicate"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["duplicate"].concurrency
    timeout                          = "${var.services["duplicate"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["duplicate"].min_instances
      max_instance_count = var.services["duplicate"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "duplicate"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["duplicate"].cpu
          memory = var.services["duplicate"].memory
        }
        cpu_idle          = true
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
        name  = "EMBEDDING_URL"
        value = google_cloud_run_v2_service.embedding.uri
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
    google_secret_manager_secret_version.redis_url,
  ]
}

# --- quality: Blurry and badly exposed photos; per-photo step fed by ongi-features.
resource "google_cloud_run_v2_service" "quality" {
  name                = local.service_names["quality"]
  location            = var.region
  description         = "Ongi quality: Blurry and badly exposed photos; per-photo step fed by ongi-features."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["quality"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["quality"].concurrency
    timeout                          = "${var.services["quality"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["quality"].min_instances
      max_instance_count = var.services["quality"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "quality"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["quality"].cpu
          memory = var.services["quality"].memory
        }
        cpu_idle          = true
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
        name  = "EMBEDDING_URL"
        value = google_cloud_run_v2_service.embedding.uri
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
    google_secret_manager_secret_version.redis_url,
  ]
}

# --- score: Best shots per category (aesthetic head); per-photo step fed by ongi-features.
resource "google_cloud_run_v2_service" "score" {
  name                = local.service_names["score"]
  location            = var.region
  description         = "Ongi score: Best shots per category (aesthetic head); per-photo step fed by ongi-features."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["score"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["score"].concurrency
    timeout                          = "${var.services["score"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["score"].min_instances
      max_instance_count = var.services["score"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "score"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["score"].cpu
          memory = var.services["score"].memory
        }
        cpu_idle          = true
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
        name  = "EMBEDDING_URL"
        value = google_cloud_run_v2_service.embedding.uri
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
    google_secret_manager_secret_version.redis_url,
  ]
}

# --- people: Faces and the people in an album; per-photo step fed by ongi-features.
resource "google_cloud_run_v2_service" "people" {
  name                = local.service_names["people"]
  location            = var.region
  description         = "Ongi people: Faces and the people in an album; per-photo step fed by ongi-features."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["people"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["people"].concurrency
    timeout                          = "${var.services["people"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["people"].min_instances
      max_instance_count = var.services["people"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "people"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["people"].cpu
          memory = var.services["people"].memory
        }
        cpu_idle          = true
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
        name  = "EMBEDDING_URL"
        value = google_cloud_run_v2_service.embedding.uri
      }

      env {
        name  = "ONGI_FACE_DETECTOR"
        value = var.face_detector
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
    google_secret_manager_secret_version.redis_url,
  ]
}

# --- style: Style jobs: Gemini writes the prompt, the GPU worker runs img2img.
resource "google_cloud_run_v2_service" "style" {
  name                = local.service_names["style"]
  location            = var.region
  description         = "Ongi style: Style jobs: Gemini writes the prompt, the GPU worker runs img2img."
  ingress             = var.ingress
  deletion_protection = var.env == "prod"
  labels              = local.labels

  template {
    service_account                  = google_service_account.function["style"].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.services["style"].concurrency
    timeout                          = "${var.services["style"].timeout_seconds}s"
    labels                           = local.labels

    scaling {
      min_instance_count = var.services["style"].min_instances
      max_instance_count = var.services["style"].max_instances
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "style"
      image = var.bootstrap_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.services["style"].cpu
          memory = var.services["style"].memory
        }
        cpu_idle          = true
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
        name  = "ONGI_RESULTS_BUCKET"
        value = google_storage_bucket.results.name
      }

      env {
        name  = "GEMINI_MODEL"
        value = var.gemini_model
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

      env {
        name = "GEMINI_API_KEY"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.gemini_api_key.secret_id
            version = "latest"
          }
        }
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
