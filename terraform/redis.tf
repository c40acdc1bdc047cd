# Memorystore for Redis 7: the shared feature cache and the style job stream. Reached over
# private services access from the subnet (Direct VPC egress, the GPU worker). AUTH is on;
# the full URL with the AUTH string is kept in Secret Manager (secrets.tf), never in plain
# environment variables. In-transit TLS is off: see terraform/README.md (checkov skips).
# Tier (var.redis_tier): BASIC, one node, loses everything on a maintenance restart or a node
# failure (dev); STANDARD_HA, a replica with automatic failover (production, prod example).

resource "google_redis_instance" "cache" {
  name           = "${local.name}-cache"
  region         = var.region
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = "REDIS_7_2"
  display_name   = "Ongi feature cache and style queue (${var.env})"

  authorized_network = google_compute_network.main.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  auth_enabled       = true

  # A full cache evicts the least recently used keys that carry a TTL (volatile-lru): the
  # feature records, faces, text embeddings and finished style jobs. The style queue carries
  # none while it matters, so it is never evicted: the job stream and the dead-letter stream
  # have no TTL, and a job's hash gets its TTL only when the job ends (done or failed;
  # shared/src/queue/scripts.rs). .ci/check_deploy.py checks that pairing. A policy that can
  # evict keys without a TTL (allkeys-*) would drop queued jobs.
  redis_configs = {
    maxmemory-policy = "volatile-lru"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 3
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }

  labels = local.labels

  depends_on = [google_service_networking_connection.private_services]
}
