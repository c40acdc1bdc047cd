# Buckets: uploads (the app's photos, read by the functions), results (style outputs),
# models (the model folder Cloud Build bakes into the images) and build-source (the sources
# `gcloud builds submit` uploads). All have uniform bucket-level access, public access
# prevention and versioning with a bounded history.

resource "google_storage_bucket" "uploads" {
  name                        = local.uploads_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # A deleted or replaced photo is gone for good after uploads_noncurrent_days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.uploads_noncurrent_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  # Browsers upload straight to the bucket with signed URLs (PUT, or resumable POST).
  dynamic "cors" {
    for_each = length(var.cors_origins) > 0 ? [1] : []
    content {
      origin          = var.cors_origins
      method          = ["GET", "HEAD", "PUT", "POST"]
      response_header = ["Content-Type", "Content-MD5", "Content-Range", "Location", "x-goog-resumable", "x-goog-generation"]
      max_age_seconds = 3600
    }
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "results" {
  name                        = local.results_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.results_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # The app shows results through signed GET URLs.
  dynamic "cors" {
    for_each = length(var.cors_origins) > 0 ? [1] : []
    content {
      origin          = var.cors_origins
      method          = ["GET", "HEAD"]
      response_header = ["Content-Type"]
      max_age_seconds = 3600
    }
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}

# gs://<models bucket>/<version>/ holds one model folder per version, as `ongi models fetch`
# lays it out (docs/deploy.md). Cloud Build copies one version into the images.
resource "google_storage_bucket" "models" {
  name                        = local.models_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}

# `gcloud builds submit --gcs-source-staging-dir=gs://<this bucket>/source` (docs/deploy.md §4)
# uploads the working tree here, and the build, running as the deployer, reads it back
# (iam.tf: objectViewer). Without the flag gcloud stages in gs://<project>_cloudbuild, which
# Terraform does not manage and the deployer cannot read: the build fails to fetch its
# source. Builds started by a trigger fetch from the connected repository, not from here.
resource "google_storage_bucket" "build_source" {
  name                        = local.build_source_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # A build reads its source within minutes of the upload; each run uploads a new object.
  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}
