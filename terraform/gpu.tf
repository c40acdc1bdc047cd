# The GPU worker (DESIGN.md "Runtime on Google Cloud"): one T4 VM in a zonal managed instance
# group of one, autohealed on GET /healthz (port 8080), running the gpu-job container on
# Container-Optimized OS. The startup script (templates/gpu-startup.sh.tftpl) installs the
# NVIDIA driver, reads REDIS_URL from Secret Manager, pulls the image and runs it with the
# GPU devices, beside an OpenTelemetry collector that sends its /metrics to Managed Service
# for Prometheus.
#
# Which image: the instance metadata key `ongi-image`, an image reference BY DIGEST
# (…/gpu-job@sha256:…). It is not in the instance template: Cloud Build sets it on the group's
# all-instances configuration after it pushed gpu-job (gcloud compute instance-groups managed
# all-instances-config update --metadata=ongi-image=…@sha256:…) and then replaces the VM, so
# a deploy never moves a tag under a running worker, and a reboot runs the same bytes again
# (the startup script pulls only an image the VM does not have). Terraform ignores that
# configuration (lifecycle below). A fresh group waits, healthy-check failures aside, until
# the first Cloud Build run has set it. A changed template (machine type, driver, settings)
# rolls out by itself (proactive updates).

locals {
  # The worker's settings (DESIGN.md "Settings"), written to its env file at boot; checked
  # by .ci/check_settings.py like the functions' env blocks. ONGI_PUBLISH: a VM has no
  # K_SERVICE, so publishing the ongi.style.v1 results to ongi-results must be asked for.
  # ONGI_STYLE_DEVICE=cuda: a worker whose GPU does not answer stops at start (and the MIG
  # recreates it) instead of quietly running Stable Diffusion on the CPU.
  gpu_job_env = {
    ONGI_LOG_FORMAT      = "json"
    ONGI_STORAGE         = "gcs"
    ONGI_BUCKET          = google_storage_bucket.uploads.name
    ONGI_RESULTS_BUCKET  = google_storage_bucket.results.name
    GOOGLE_CLOUD_PROJECT = var.project_id
    ONGI_CACHE_TTL_SECS  = local.cache_ttl_secs
    ONGI_MODEL_DIR       = local.model_dir
    ONGI_PUBLISH         = "true"
    ONGI_STYLE_DEVICE    = "cuda"
  }

  # Settings read from Secret Manager at boot: name => secret id.
  gpu_job_secret_env = {
    REDIS_URL = google_secret_manager_secret.redis_url.secret_id
  }
}

resource "google_compute_instance_template" "gpu_job" {
  name_prefix  = "${local.name}-gpu-job-"
  description  = "Ongi GPU worker (gpu-job on a T4)"
  machine_type = var.gpu_machine_type
  tags         = ["ongi-gpu-worker"]

  labels = merge(local.labels, {
    ongi_role = "gpu-worker"
  })

  disk {
    # The image family, resolved when a VM is created: a new COS release does not change the
    # template (and so does not replace the VM on the next apply).
    source_image = "projects/cos-cloud/global/images/family/cos-stable"
    disk_type    = "pd-balanced"
    disk_size_gb = var.gpu_boot_disk_gb
    auto_delete  = true
    boot         = true
  }

  network_interface {
    subnetwork = google_compute_subnetwork.main.id
    # No external address: images come through Private Google Access, the rest through NAT.
  }

  guest_accelerator {
    type  = var.gpu_type
    count = 1
  }

  scheduling {
    on_host_maintenance         = "TERMINATE"
    automatic_restart           = !var.gpu_spot
    preemptible                 = var.gpu_spot
    provisioning_model          = var.gpu_spot ? "SPOT" : "STANDARD"
    instance_termination_action = var.gpu_spot ? "DELETE" : null
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  service_account {
    email  = google_service_account.gpu_job.email
    scopes = ["cloud-platform"]
  }

  metadata = {
    block-project-ssh-keys = "true"
    enable-oslogin         = "TRUE"
    google-logging-enabled = "true"
    startup-script = templatefile("${path.module}/templates/gpu-startup.sh.tftpl", {
      repository      = "${local.image_repository}/gpu-job"
      registry_host   = "${var.region}-docker.pkg.dev"
      project_id      = var.project_id
      driver_version  = var.gpu_driver_version
      collector_image = var.metrics_collector_image
      env             = local.gpu_job_env
      secret_env      = local.gpu_job_secret_env
    })
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [
    google_secret_manager_secret_iam_member.redis_url,
    google_secret_manager_secret_version.redis_url,
    google_compute_router_nat.main,
    google_artifact_registry_repository_iam_member.gpu_job_pull,
  ]
}

resource "google_compute_health_check" "gpu_job" {
  name                = "${local.name}-gpu-job-health"
  check_interval_sec  = 30
  timeout_sec         = 10
  healthy_threshold   = 1
  unhealthy_threshold = 4

  http_health_check {
    port         = 8080
    request_path = "/healthz"
  }

  log_config {
    enable = true
  }

  depends_on = [google_project_service.apis]
}

resource "google_compute_instance_group_manager" "gpu_job" {
  name               = "${local.name}-gpu-job"
  zone               = var.gpu_zone
  base_instance_name = "${local.name}-gpu-job"
  target_size        = var.gpu_target_size
  description        = "Ongi GPU worker: one T4 VM running gpu-job"

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.gpu_job.id
  }

  # The driver install and the image pull take several minutes on a fresh VM.
  auto_healing_policies {
    health_check      = google_compute_health_check.gpu_job.id
    initial_delay_sec = 900
  }

  # One GPU and usually a quota of one: replace in place (no surge).
  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    replacement_method    = "RECREATE"
    max_surge_fixed       = 0
    max_unavailable_fixed = 1
  }

  # all_instances_config carries `ongi-image`, set by Cloud Build on every deploy.
  lifecycle {
    ignore_changes = [all_instances_config]
  }

  depends_on = [google_compute_firewall.gpu_health_checks]
}
