# The Docker repository of the eight images (seven functions + gpu-job) and of the build
# cache image (ongi-build-cache:deps-latest, :gpu-deps-latest). Versions older than 90 days
# are deleted, except the 20 newest of each image and the "latest" and cache tags.

resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = var.repository_id
  format        = "DOCKER"
  description   = "Ongi images, built and pushed by cloudbuild/cloudbuild.yaml"

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent-versions"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "keep-latest-and-cache"
    action = "KEEP"
    condition {
      tag_state    = "TAGGED"
      tag_prefixes = ["latest", "deps-latest", "gpu-deps-latest"]
    }
  }

  cleanup_policies {
    id     = "delete-older-than-90-days"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "7776000s"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}
