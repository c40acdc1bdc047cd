# Secrets, read by the functions as environment variables (Cloud Run secret references) and
# by the GPU worker at boot:
#   - redis-url: redis://:<AUTH string>@<host>:<port>/0, written here from the Memorystore
#     instance (so it is also in the Terraform state: keep the state bucket private);
#   - gemini-api-key: the Gemini API key of the style function. Terraform creates the secret
#     but never its value: add a version by hand (docs/deploy.md, "Gemini key") before the
#     style service is created, and to rotate the key.

resource "google_secret_manager_secret" "redis_url" {
  secret_id = "${local.name}-redis-url"

  replication {
    auto {}
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "redis_url" {
  secret      = google_secret_manager_secret.redis_url.id
  secret_data = "redis://:${google_redis_instance.cache.auth_string}@${google_redis_instance.cache.host}:${google_redis_instance.cache.port}/0"
}

resource "google_secret_manager_secret" "gemini_api_key" {
  secret_id = "${local.name}-gemini-api-key"

  replication {
    auto {}
  }

  labels = local.labels

  depends_on = [google_project_service.apis]
}
