# Inputs of the Ongi stack. dev.tfvars.example and prod.tfvars.example show typical values.

# --- Project and naming -------------------------------------------------------------------

variable "project_id" {
  description = "The Google Cloud project that holds this environment (one project per environment is recommended)."
  type        = string
}

variable "env" {
  description = "The environment: dev or prod. Part of resource names and labels; prod turns on deletion protection."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.env)
    error_message = "The env variable must be \"dev\" or \"prod\"."
  }
}

variable "region" {
  description = "The region of every regional resource (Cloud Run, Memorystore, buckets, Artifact Registry, the subnet)."
  type        = string
  default     = "us-central1"
}

variable "gpu_zone" {
  description = "The zone of the GPU worker; it must be in var.region and offer NVIDIA T4 GPUs."
  type        = string
  default     = "us-central1-a"
}

variable "name_prefix" {
  description = "Prefix of the names of network, Redis, service-account and other resources (\"<name_prefix>-<env>-...\")."
  type        = string
  default     = "ongi"
}

variable "service_prefix" {
  description = "Prefix of the Cloud Run service names (\"<service_prefix><function>\"); cloudbuild/cloudbuild.yaml's _SERVICE_PREFIX must match."
  type        = string
  default     = "ongi-"
}

variable "labels" {
  description = "Extra labels put on every resource that takes labels (app and env are always added)."
  type        = map(string)
  default     = {}
}

# --- Network ------------------------------------------------------------------------------

variable "subnet_cidr" {
  description = "IPv4 range of the subnet used by Cloud Run Direct VPC egress and the GPU worker. Direct VPC egress takes up to two addresses per instance: size it for the sum of max_instances."
  type        = string
  default     = "10.20.0.0/22"
}

variable "psa_prefix_length" {
  description = "Prefix length of the range reserved for private services access (Memorystore)."
  type        = number
  default     = 20
}

variable "allow_iap_ssh" {
  description = "Whether to allow SSH to the GPU worker through Identity-Aware Proxy (35.235.240.0/20) for debugging."
  type        = bool
  default     = false
}

# --- Storage ------------------------------------------------------------------------------

variable "uploads_bucket_name" {
  description = "Name of the uploads bucket (the app's photos); empty means \"<project_id>-<env>-uploads\". Sets ONGI_BUCKET."
  type        = string
  default     = ""
}

variable "results_bucket_name" {
  description = "Name of the results bucket (style outputs); empty means \"<project_id>-<env>-results\". Sets ONGI_RESULTS_BUCKET."
  type        = string
  default     = ""
}

variable "models_bucket_name" {
  description = "Name of the bucket the model files are uploaded to, read by Cloud Build; empty means \"<project_id>-<env>-models\"."
  type        = string
  default     = ""
}

variable "cors_origins" {
  description = "Origins allowed to upload to the uploads bucket with signed URLs (browser PUT/POST), e.g. [\"https://app.example.com\"]."
  type        = list(string)
  default     = []
}

variable "uploads_noncurrent_days" {
  description = "Days a deleted or overwritten photo is kept as a noncurrent version in the uploads bucket before it is removed."
  type        = number
  default     = 7
}

variable "results_retention_days" {
  description = "Days a style result is kept in the results bucket."
  type        = number
  default     = 30
}

variable "force_destroy_buckets" {
  description = "Whether terraform destroy may delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

# --- Memorystore ----------------------------------------------------------------------------

variable "redis_tier" {
  description = "Memorystore tier: BASIC (one node, no replica: a maintenance restart or a node failure empties Redis, queued style jobs included; for dev) or STANDARD_HA (a replica in another zone with automatic failover; for production, see docs/deploy.md). Changing it replaces the instance."
  type        = string
  default     = "BASIC"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "The redis_tier variable must be BASIC or STANDARD_HA."
  }
}

variable "redis_memory_size_gb" {
  description = "Memorystore capacity in GB (a cached photo takes about 2.1 KB plus its aliases)."
  type        = number
  default     = 1
}

variable "cache_ttl_days" {
  description = "Lifetime of a cached feature record, in days (sets ONGI_CACHE_TTL_SECS)."
  type        = number
  default     = 30
}

# --- Cloud Run ------------------------------------------------------------------------------

variable "services" {
  description = "Size and scaling of each Cloud Run function: cpu (\"1\", \"2\", ...), memory (\"512Mi\", \"2Gi\", ...), concurrency (requests per instance), min/max instances, request timeout in seconds (also the ack deadline of the push subscription to the service, so at most 600 for those Pub/Sub pushes to)."
  type = map(object({
    cpu             = string
    memory          = string
    concurrency     = number
    min_instances   = number
    max_instances   = number
    timeout_seconds = number
  }))
  default = {
    embedding = { cpu = "2", memory = "4Gi", concurrency = 16, min_instances = 0, max_instances = 20, timeout_seconds = 300 }
    category  = { cpu = "2", memory = "2Gi", concurrency = 16, min_instances = 0, max_instances = 10, timeout_seconds = 300 }
    duplicate = { cpu = "2", memory = "2Gi", concurrency = 16, min_instances = 0, max_instances = 10, timeout_seconds = 300 }
    quality   = { cpu = "2", memory = "2Gi", concurrency = 16, min_instances = 0, max_instances = 10, timeout_seconds = 300 }
    score     = { cpu = "2", memory = "2Gi", concurrency = 16, min_instances = 0, max_instances = 10, timeout_seconds = 300 }
    people    = { cpu = "2", memory = "2Gi", concurrency = 8, min_instances = 0, max_instances = 10, timeout_seconds = 300 }
    style     = { cpu = "1", memory = "512Mi", concurrency = 40, min_instances = 0, max_instances = 5, timeout_seconds = 120 }
  }

  validation {
    condition     = length(setsubtract(["embedding", "category", "duplicate", "quality", "score", "people", "style"], keys(var.services))) == 0
    error_message = "The services variable must have an entry for each of embedding, category, duplicate, quality, score, people and style."
  }

  # Pub/Sub pushes to embedding (uploads) and the per-photo steps, and waits for their answer
  # at most its maximum ack deadline, 600 s: a longer request timeout could not be covered,
  # and a slow request would be delivered again while it still runs.
  validation {
    condition     = alltrue([for name in ["embedding", "category", "quality", "score", "people"] : try(var.services[name].timeout_seconds >= 10 && var.services[name].timeout_seconds <= 600, true)])
    error_message = "The timeout_seconds of embedding, category, quality, score and people must be between 10 and 600: Pub/Sub pushes to them and waits at most 600 s (its ack deadline) for the answer."
  }
}

variable "ingress" {
  description = "Cloud Run ingress. INGRESS_TRAFFIC_INTERNAL_ONLY (default): only the VPC and Pub/Sub push reach the functions; INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_ALL when the app backend runs elsewhere. Every request needs an IAM-authorised ID token either way."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_ALL"], var.ingress)
    error_message = "The ingress variable must be one of INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER, INGRESS_TRAFFIC_ALL."
  }
}

variable "invoker_members" {
  description = "IAM members allowed to call every function (roles/run.invoker), e.g. the app backend's service account \"serviceAccount:backend@app.iam.gserviceaccount.com\". Never allUsers."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.invoker_members, "allUsers") && !contains(var.invoker_members, "allAuthenticatedUsers")
    error_message = "The functions are IAM-only: invoker_members must not contain allUsers or allAuthenticatedUsers."
  }
}

variable "bootstrap_image" {
  description = "Image the Cloud Run services are created with before Cloud Build has pushed Ongi's images. Terraform ignores later image changes: Cloud Build deploys the images."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"
}

variable "build_submitters" {
  description = "IAM members who run `gcloud builds submit` by hand as the deployer (docs/deploy.md §4), e.g. \"group:ongi-developers@example.com\": they may upload to the build-source bucket and act as the deployer. Project Owners and Editors need no entry. Each also needs roles/cloudbuild.builds.editor on the project, which Terraform does not grant."
  type        = list(string)
  default     = []
}

variable "ongi_deployed" {
  description = "Whether Cloud Build has deployed Ongi's images to the Cloud Run services. While false, the subscriptions that push to them (ongi-uploads-embedding, ongi-features-*) are pull subscriptions that hold their messages for 7 days: var.bootstrap_image answers 200 to any request and would acknowledge them unread. Set it to true after the first Cloud Build run and apply (docs/deploy.md §4): they become push subscriptions in place and deliver what they held."
  type        = bool
  default     = false
}

variable "repository_id" {
  description = "Artifact Registry Docker repository of the images (cloudbuild/cloudbuild.yaml's _REPOSITORY)."
  type        = string
  default     = "ongi"
}

variable "face_detector" {
  description = "Face detector of the people function: yunet or mtcnn (sets ONGI_FACE_DETECTOR)."
  type        = string
  default     = "yunet"

  validation {
    condition     = contains(["yunet", "mtcnn"], var.face_detector)
    error_message = "The face_detector variable must be yunet or mtcnn."
  }
}

variable "gemini_model" {
  description = "Gemini model that writes the diffusion prompt in the style function (sets GEMINI_MODEL)."
  type        = string
  default     = "gemini-2.5-flash"
}

# --- Pub/Sub --------------------------------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Deliveries of an ongi-features or ongi-uploads message before it goes to its dead-letter topic (5 to 100)."
  type        = number
  default     = 10
}

# --- GPU worker -----------------------------------------------------------------------------

variable "gpu_machine_type" {
  description = "Machine type of the GPU worker (T4 GPUs attach to N1 machine types)."
  type        = string
  default     = "n1-standard-4"
}

variable "gpu_type" {
  description = "Accelerator type of the GPU worker."
  type        = string
  default     = "nvidia-tesla-t4"
}

variable "gpu_spot" {
  description = "Whether the GPU worker is a Spot VM (about a third of the on-demand price; it can be preempted, and the group recreates it)."
  type        = bool
  default     = false
}

variable "gpu_target_size" {
  description = "Number of GPU workers (0 stops the worker; 1 in normal use)."
  type        = number
  default     = 1
}

variable "gpu_boot_disk_gb" {
  description = "Boot disk size of the GPU worker in GB (the image holds CUDA and the Stable Diffusion weights)."
  type        = number
  default     = 100
}

variable "gpu_driver_version" {
  description = "NVIDIA driver the GPU worker's startup script installs (cos-extensions install gpu -- -version=...): a branch label such as R580 or an exact version such as 580.95.05. The worker is built with CUDA 13.0, which needs R580 or newer; \"latest\" and \"default\" are refused because they move under a running deployment."
  type        = string
  default     = "R580"

  validation {
    condition     = can(regex("^(R(58[0-9]|59[0-9]|[6-9][0-9]{2})|(58[0-9]|59[0-9]|[6-9][0-9]{2})\\.[0-9]+(\\.[0-9]+)?)$", var.gpu_driver_version))
    error_message = "The gpu_driver_version variable must name an R580 or newer driver (R580, R590, 580.95.05, ...): the worker is built with CUDA 13.0."
  }
}

# --- Metrics collectors (Managed Service for Prometheus) ------------------------------------

variable "metrics_sidecar_image" {
  description = "Image of the Managed Service for Prometheus sidecar added to every Cloud Run service (scrapes the function's /metrics on port 8080). A version tag, never latest."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"

  validation {
    condition     = can(regex(":[0-9][^:/]*$|@sha256:[0-9a-f]{64}$", var.metrics_sidecar_image))
    error_message = "The metrics_sidecar_image variable must carry a version tag or a digest (no latest, no bare name)."
  }
}

variable "metrics_collector_image" {
  description = "Image of the OpenTelemetry collector the GPU worker's VM runs beside gpu-job (Google-Built OpenTelemetry Collector: scrapes 127.0.0.1:8080/metrics, exports to Managed Service for Prometheus). A version tag, never latest."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.121.0"

  validation {
    condition     = can(regex(":[0-9][^:/]*$|@sha256:[0-9a-f]{64}$", var.metrics_collector_image))
    error_message = "The metrics_collector_image variable must carry a version tag or a digest (no latest, no bare name)."
  }
}

# --- Batch reprocessing ---------------------------------------------------------------------

variable "reprocess_enabled" {
  description = "Whether Cloud Scheduler starts the batch reprocessing Cloud Run job on reprocess_schedule (the scheduler job is created paused otherwise; the Cloud Run job can always be run by hand)."
  type        = bool
  default     = false
}

variable "reprocess_task_timeout_seconds" {
  description = "How long one run of the batch reprocessing job may take before Cloud Run stops it (it resumes from its cursor on the next run). At most 86400."
  type        = number
  default     = 21600

  validation {
    condition     = var.reprocess_task_timeout_seconds >= 600 && var.reprocess_task_timeout_seconds <= 86400
    error_message = "The reprocess_task_timeout_seconds variable must be between 600 and 86400."
  }
}

variable "reprocess_schedule" {
  description = "Cron schedule of the batch reprocessing job."
  type        = string
  default     = "0 3 * * *"
}

variable "reprocess_time_zone" {
  description = "Time zone of reprocess_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "reprocess_prefix" {
  description = "Object prefix the batch reprocessing walks in the uploads bucket (empty: the whole bucket)."
  type        = string
  default     = ""
}

# --- Monitoring -----------------------------------------------------------------------------

variable "alert_webhook_url" {
  description = "URL of the alert webhook (webhook_tokenauth channel) that relays Cloud Monitoring incidents to Discord. Empty: no notification channel (alerts still show in the console). See terraform/README.md: Discord does not accept Cloud Monitoring's JSON directly."
  type        = string
  default     = ""
  sensitive   = true
}

variable "error_rate_threshold" {
  description = "Fraction of 5xx responses of a function, over 5 minutes, that opens an incident."
  type        = number
  default     = 0.05
}

variable "style_queue_threshold" {
  description = "Style jobs queued or running (ongi_style_queue_depth), for 15 minutes, that open an incident."
  type        = number
  default     = 20
}

variable "queue_depth_threshold" {
  description = "Undelivered ongi-features messages of one subscription, for 10 minutes, that open an incident."
  type        = number
  default     = 1000
}
