# Observability (DESIGN.md): a dashboard and alert policies, notified through a webhook
# channel meant for Discord.
#
# Discord's webhook API only accepts its own message format ({"content": ...}), while Cloud
# Monitoring posts its incident JSON, so var.alert_webhook_url must be a relay that turns one
# into the other (terraform/README.md, "Alerts to Discord"), not the raw Discord URL.
#
# Alerts:
#   - a function answers more than var.error_rate_threshold 5xx over 5 minutes;
#   - an ongi-features subscription holds more than var.queue_depth_threshold messages, or
#     its oldest message waits more than 30 minutes;
#   - any message in a dead-letter hold subscription;
#   - the GPU worker is down (no VM reporting for 15 minutes) or was recreated by autohealing;
#   - the style queue (Redis stream) holds more than var.style_queue_threshold jobs for 15
#     minutes, or the GPU worker's own metrics stopped arriving: PromQL over the Prometheus
#     metrics that the collectors send to Managed Service for Prometheus (the Cloud Run
#     sidecars of run.tf, the VM's collector in templates/gpu-startup.sh.tftpl).

locals {
  notification_channels = google_monitoring_notification_channel.discord[*].id

  service_filter  = "resource.labels.service_name = one_of(${join(", ", [for f in local.functions : "\"${local.service_names[f]}\""])})"
  features_subs   = "resource.labels.subscription_id = one_of(${join(", ", [for f in local.per_photo_functions : "\"ongi-features-${f}\""])})"
  dead_letter_sub = "resource.labels.subscription_id = one_of(${join(", ", [for s in google_pubsub_subscription.dead_letters : "\"${s.name}\""])})"
  gpu_filter      = "resource.type = \"gce_instance\" AND metadata.user_labels.ongi_role = \"gpu-worker\" AND metadata.user_labels.env = \"${var.env}\""
}

resource "google_monitoring_notification_channel" "discord" {
  count = nonsensitive(var.alert_webhook_url != "") ? 1 : 0

  display_name = "Ongi ${var.env} alerts (Discord relay)"
  type         = "webhook_tokenauth"
  labels = {
    url = var.alert_webhook_url
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "error_rate" {
  display_name          = "Ongi ${var.env}: function error rate"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "5xx responses above ${var.error_rate_threshold * 100}% over 5 min"

    condition_threshold {
      filter             = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\" AND ${local.service_filter}"
      denominator_filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND ${local.service_filter}"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.error_rate_threshold
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers too many 5xx. Check its logs (Cloud Run > service > Logs); roll back with docs/deploy.md \"Roll back\" if a deploy caused it. Event routes answer 503 on transient failures so that Pub/Sub retries: a Redis or GCS outage shows up here."
  }
}

resource "google_monitoring_alert_policy" "queue_depth" {
  display_name          = "Ongi ${var.env}: ongi-features backlog"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "More than ${var.queue_depth_threshold} undelivered messages for 10 min"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.features_subs}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.queue_depth_threshold
      duration        = "600s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "Oldest undelivered message older than 30 min"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.features_subs}"
      comparison      = "COMPARISON_GT"
      threshold_value = 1800
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The per-photo steps fall behind the uploads. Check the subscriber service's errors and its max_instances (var.services)."
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "Ongi ${var.env}: dead letters"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Messages in a dead-letter hold subscription"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.dead_letter_sub}"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Messages failed ${var.max_delivery_attempts} deliveries and wait 7 days in a hold subscription: ongi-uploads-dead-letter-hold (upload notifications for embedding), ongi-features-dead-letter-hold (the per-photo steps) or ongi-results-dead-letter-hold (the app backend's subscriptions). Inspect them with `gcloud pubsub subscriptions pull <hold subscription> --limit 10` (without --auto-ack; an upload's objectId attribute names the photo) and fix the cause. Then replay: publish a features message's data to ongi-features again (`gcloud pubsub topics publish ongi-features --message '<data>'`); for uploads, run the reprocessing job (`gcloud run jobs execute ${google_cloud_run_v2_job.reprocess.name} --region ${var.region}`), which computes the features the lost notifications missed and announces them on ongi-features. Finally acknowledge the held messages (`gcloud pubsub subscriptions pull <hold subscription> --auto-ack --limit 100`)."
  }
}

resource "google_monitoring_alert_policy" "gpu_worker_down" {
  count = var.gpu_target_size > 0 ? 1 : 0

  display_name          = "Ongi ${var.env}: GPU worker down"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "No GPU worker VM reporting for 15 min"

    condition_absent {
      filter   = "metric.type = \"compute.googleapis.com/instance/uptime\" AND ${local.gpu_filter}"
      duration = "900s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_COUNT"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The GPU worker's VM is gone: style jobs wait in the Redis stream. Check the managed instance group (GPU quota and stockouts in the zone, Spot preemptions) and the VM's serial console."
  }
}

resource "google_monitoring_alert_policy" "gpu_worker_recreated" {
  count = var.gpu_target_size > 0 ? 1 : 0

  display_name          = "Ongi ${var.env}: GPU worker recreated by autohealing"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Autohealing recreated the GPU worker"

    condition_matched_log {
      filter = "resource.type = \"gce_instance\" AND protoPayload.methodName = \"compute.instances.repair.recreateInstance\" AND protoPayload.resourceName : \"${local.name}-gpu-job\""
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The worker failed its /healthz check for 2 minutes and was recreated. Read the gpu-job container's logs (Logging: resource.type=\"gce_instance\", logName ends with cos_containers, labels.container_name=\"gpu-job\")."
  }
}

resource "google_monitoring_alert_policy" "style_queue" {
  count = var.gpu_target_size > 0 ? 1 : 0

  display_name          = "Ongi ${var.env}: style jobs waiting"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "More than ${var.style_queue_threshold} style jobs queued or running for 15 min"

    condition_prometheus_query_language {
      query               = "max(ongi_style_queue_depth) > ${var.style_queue_threshold}"
      duration            = "900s"
      evaluation_interval = "60s"
    }
  }

  conditions {
    display_name = "No metrics from the GPU worker for 15 min"

    condition_prometheus_query_language {
      query               = "absent_over_time(ongi_style_queue_depth{job=\"gpu-job\"}[15m])"
      duration            = "0s"
      evaluation_interval = "300s"
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Style jobs wait in the Redis stream: the GPU worker is down, slow or failing. Check the worker's logs (resource.type=\"gce_instance\", logName ends with cos_containers), its metrics-collector container, and the dead-letter stream (ongi_style_dead_letters)."
  }
}

resource "google_monitoring_dashboard" "ongi" {
  dashboard_json = jsonencode({
    displayName = "Ongi (${var.env})"
    mosaicLayout = {
      columns = 12
      tiles = [
        {
          xPos = 0, yPos = 0, width = 6, height = 4
          widget = {
            title = "Requests per second, by function"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND ${local.service_filter}"
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = "ALIGN_RATE"
                      crossSeriesReducer = "REDUCE_SUM"
                      groupByFields      = ["resource.label.service_name"]
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 6, yPos = 0, width = 6, height = 4
          widget = {
            title = "5xx per second, by function"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\" AND ${local.service_filter}"
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = "ALIGN_RATE"
                      crossSeriesReducer = "REDUCE_SUM"
                      groupByFields      = ["resource.label.service_name"]
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 0, yPos = 4, width = 6, height = 4
          widget = {
            title = "Request latency p95, by function"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_latencies\" AND ${local.service_filter}"
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = "ALIGN_DELTA"
                      crossSeriesReducer = "REDUCE_PERCENTILE_95"
                      groupByFields      = ["resource.label.service_name"]
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 6, yPos = 4, width = 6, height = 4
          widget = {
            title = "Instances, by function"
            xyChart = {
              dataSets = [{
                plotType = "STACKED_AREA"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/container/instance_count\" AND ${local.service_filter}"
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = "ALIGN_MAX"
                      crossSeriesReducer = "REDUCE_SUM"
                      groupByFields      = ["resource.label.service_name"]
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 0, yPos = 8, width = 6, height = 4
          widget = {
            title = "ongi-features backlog, by subscription"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.features_subs}"
                    aggregation = {
                      alignmentPeriod  = "60s"
                      perSeriesAligner = "ALIGN_MEAN"
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 6, yPos = 8, width = 6, height = 4
          widget = {
            title = "Dead letters held"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.dead_letter_sub}"
                    aggregation = {
                      alignmentPeriod  = "60s"
                      perSeriesAligner = "ALIGN_MAX"
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 0, yPos = 12, width = 6, height = 4
          widget = {
            title = "Memorystore memory usage ratio"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "resource.type = \"redis_instance\" AND metric.type = \"redis.googleapis.com/stats/memory/usage_ratio\" AND resource.labels.instance_id = ends_with(\"${local.name}-cache\")"
                    aggregation = {
                      alignmentPeriod  = "60s"
                      perSeriesAligner = "ALIGN_MEAN"
                    }
                  }
                }
              }]
            }
          }
        },
        {
          xPos = 6, yPos = 12, width = 6, height = 4
          widget = {
            title = "GPU worker CPU utilization"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND ${local.gpu_filter}"
                    aggregation = {
                      alignmentPeriod  = "60s"
                      perSeriesAligner = "ALIGN_MEAN"
                    }
                  }
                }
              }]
            }
          }
        },
      ]
    }
  })

  depends_on = [google_project_service.apis]
}
