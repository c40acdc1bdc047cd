//! The HTTP plumbing, through the real application on a real port: envelope and status
//! mapping, limits, request ids, health, readiness, metrics, OpenAPI, graceful shutdown.

use std::time::{Duration, Instant};

use ongi_shared::functions::{Function, Functions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{free_port, redis_url, spawn_app, storage_emulator};

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = spawn_app(Functions::all(), &[]).await;
    let health: Value = reqwest::get(app.url("/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "ongi");

    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["cache"]["kind"], "memory");
    assert_eq!(ready["storage"]["kind"], "local");

    let spec: Value = reqwest::get(app.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/albums/quality",
        "/api/albums/people",
        "/api/albums/style/{job_id}",
        "/readyz",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }

    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ongi_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/healthz\""), "labelled by route template");
    assert!(metrics.contains("ongi_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn request_ids_are_made_or_kept() {
    let app = spawn_app(Functions::all(), &[]).await;
    let made = reqwest::get(app.url("/healthz")).await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "caller-chosen-id");
    // An id too long to echo, or holding what a log line should not, is replaced.
    for unusable in [
        "x".repeat(10_000),
        "a b".to_owned(),
        "<script>".to_owned(),
        "x".repeat(129),
    ] {
        let replaced = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", unusable.as_bytes())
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a fresh UUID instead of {} bytes: {id}", unusable.len());
    }
    let longest = "a".repeat(128);
    let kept = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", &longest)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], longest.as_str());
}

async fn expect_error(resp: reqwest::Response, status: u16, message: &str, mentions: &str) {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.expect("an envelope, not plain text");
    assert_eq!(body["message"], message, "{body}");
    assert!(body["data"].is_null(), "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(mentions), "{error:?} should mention {mentions:?}");
}

#[tokio::test]
async fn bad_requests_get_the_envelope_and_name_the_problem() {
    let app = spawn_app(Functions::all(), &[]).await;
    let bad_ref = app
        .post_json("/api/albums/quality", &json!({"images": ["a.jpg", "../../etc/passwd"]}))
        .await;
    expect_error(bad_ref, 400, "invalid_request", "images[1] \"../../etc/passwd\"").await;

    let url_ref = app
        .post_json(
            "/api/albums/duplicates",
            &json!({"images": ["http://169.254.169.254/x"]}),
        )
        .await;
    expect_error(url_ref, 400, "invalid_request", "never fetched").await;

    let empty = app.post_json("/api/albums/people", &json!({"images": []})).await;
    expect_error(empty, 400, "invalid_request", "images is empty").await;

    let too_many: Vec<String> = (0..1001).map(|i| format!("{i}.jpg")).collect();
    let many = app
        .post_json("/api/albums/embedding", &json!({"images": too_many}))
        .await;
    expect_error(many, 400, "invalid_request", "at most 1000").await;

    let concepts: Vec<String> = (0..101).map(|i| format!("tag {i}")).collect();
    let many_concepts = app
        .post_json(
            "/api/albums/categories",
            &json!({"images": ["a.jpg"], "concepts": concepts}),
        )
        .await;
    expect_error(many_concepts, 400, "invalid_request", "concepts: at most 100").await;
    let long_concept = app
        .post_json(
            "/api/albums/categories",
            &json!({"images": ["a.jpg"], "concepts": ["x".repeat(101)]}),
        )
        .await;
    expect_error(long_concept, 400, "invalid_request", "longer than 100 characters").await;

    let malformed = app
        .client
        .post(app.url("/api/albums/quality"))
        .header("content-type", "application/json")
        .body("{\"images\": [")
        .send()
        .await
        .unwrap();
    expect_error(malformed, 400, "invalid_request", "not valid JSON").await;

    let wrong_type = app
        .client
        .post(app.url("/api/albums/quality"))
        .body("images=a.jpg")
        .send()
        .await
        .unwrap();
    expect_error(wrong_type, 400, "invalid_request", "Content-Type").await;

    let wrong_shape = app.post_json("/api/albums/score", &json!({"categories": "food"})).await;
    expect_error(wrong_shape, 400, "invalid_request", "schema").await;

    let foreign = app
        .post_json("/api/albums/quality", &json!({"images": ["gs://someone-else/a.jpg"]}))
        .await;
    expect_error(foreign, 400, "invalid_request", "not served here").await;

    let huge = format!("{{\"images\": [\"{}\"]}}", "a".repeat(1024 * 1024 + 10));
    let too_big = app
        .client
        .post(app.url("/api/albums/quality"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(too_big, 413, "invalid_request", "larger than 1048576 bytes").await;
}

#[tokio::test]
async fn batch_reprocess_is_served_by_every_function_and_documented() {
    // A function that is not the embedding one reprocesses its own step only.
    let app = spawn_app(Functions::only(Function::Quality), &[]).await;
    let album = app.data_dir().join("uploads/a");
    std::fs::create_dir_all(&album).unwrap();
    let img = image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([(x * 8) as u8, (y * 10) as u8, 90]));
    img.save(album.join("one.png")).unwrap();
    let resp = app
        .post_json("/batch/reprocess", &json!({"bucket": "uploads", "prefix": ""}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "success", "{body}");
    assert_eq!(body["data"]["steps"], json!(["quality"]));
    assert_eq!(
        (body["data"]["processed"].as_u64(), body["data"]["complete"].as_bool()),
        (Some(1), Some(true))
    );

    let spec: Value = reqwest::get(app.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &spec["paths"]["/batch/reprocess"]["post"];
    assert!(op["requestBody"].is_object(), "{op}");
    let answer = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_default();
    assert!(answer.ends_with("/ReprocessAnswer"), "{op}");
    let report = &spec["components"]["schemas"]["ReprocessReport"]["properties"];
    for field in [
        "complete",
        "cursor",
        "scanned",
        "processed",
        "skipped_by_reason",
        "failed_by_reason",
    ] {
        assert!(
            report[field].is_object(),
            "ReprocessReport.{field} is documented: {report}"
        );
    }
}

#[tokio::test]
async fn style_without_redis_says_what_it_needs() {
    let app = spawn_app(Functions::all(), &[]).await;
    let resp = app
        .post_json("/api/albums/style", &json!({"image": "a.jpg", "style": "ghibli"}))
        .await;
    expect_error(resp, 503, "service_unavailable", "set REDIS_URL").await;
    let bad = app
        .post_json("/api/albums/style", &json!({"image": "a.jpg", "style": ""}))
        .await;
    expect_error(bad, 400, "invalid_request", "style is empty").await;
}

#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let app = spawn_app(Functions::only(Function::Quality), &[]).await;
    let quality = app
        .post_json("/api/albums/quality", &json!({"images": ["a.jpg"]}))
        .await;
    assert_eq!(quality.status(), 201, "served; the missing photo is reported per photo");
    let body: serde_json::Value = quality.json().await.unwrap();
    assert_eq!(body["invalid_images"][0]["reason"], "not_found");
    let people = app.post_json("/api/albums/people", &json!({"images": ["a.jpg"]})).await;
    assert_eq!(people.status(), 404);
    let health: Value = reqwest::get(app.url("/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["service"], "quality");
}

#[tokio::test]
async fn readiness_names_the_dependency_that_is_down() {
    let dead_redis = format!("redis://127.0.0.1:{}", free_port());
    let app = spawn_app(Functions::all(), &[("REDIS_URL", &dead_redis)]).await;
    let resp = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["cache"]["kind"], "redis");
    assert_eq!(body["cache"]["ok"], false);
    assert_eq!(body["storage"]["ok"], true);
    // Alive all the same: liveness does not depend on Redis.
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn ready_with_real_redis_and_the_storage_emulator() {
    let app = spawn_app(
        Functions::all(),
        &[
            ("REDIS_URL", &redis_url()),
            ("STORAGE_EMULATOR_HOST", &storage_emulator()),
        ],
    )
    .await;
    let resp = reqwest::get(app.url("/readyz")).await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cache"]["kind"], "redis");
    assert_eq!(body["storage"]["kind"], "gcs");
}

/// Sends the head of a request whose body is still to come, so it is in flight.
async fn start_slow_request(addr: std::net::SocketAddr, body: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/albums/style HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..5]).await.unwrap();
    stream
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app(Functions::all(), &[]).await;
    let body = r#"{"image": "a.jpg", "style": "ghibli"}"#;
    let mut stream = start_slow_request(app.address, body).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted…
    assert!(
        reqwest::Client::new()
            .get(app.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_err()
    );
    // …but the request in flight completes with its real answer.
    stream.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    // (Its real answer: no Redis here, so no style queue.)
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    let result = tokio::time::timeout(Duration::from_secs(5), &mut app.handle).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "the server stopped cleanly: {result:?}"
    );
}

#[tokio::test]
async fn shutdown_gives_up_on_a_stuck_request_after_the_drain_timeout() {
    let mut app = spawn_app(Functions::all(), &[]).await;
    let _stuck = start_slow_request(app.address, r#"{"image": "a.jpg", "style": "ghibli"}"#).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    app.stop();
    let result = tokio::time::timeout(Duration::from_secs(15), &mut app.handle).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
        "stopped after {waited:?}"
    );
}

#[tokio::test]
async fn with_a_token_every_route_but_healthz_needs_it() {
    let token = "a-test-token-of-sufficient-length";
    let app = spawn_app(Functions::all(), &[("ONGI_API_TOKEN", token)]).await;
    let body = json!({"images": ["a.jpg"]});
    let none = app.post_json("/api/albums/quality", &body).await;
    assert_eq!(
        none.headers().get("www-authenticate").map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    expect_error(none, 401, "unauthorized", "Authorization: Bearer").await;
    let wrong = app
        .client
        .post(app.url("/api/albums/quality"))
        .bearer_auth("a-test-token-of-sufficient-lengtX")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(wrong, 401, "unauthorized", "not the one").await;
    let right = app
        .client
        .post(app.url("/api/albums/quality"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 201);
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(app.url("/metrics")).await.unwrap().status(), 401);
}

#[tokio::test]
async fn detail_accepts_true_false_1_0_and_refuses_anything_else_in_the_envelope() {
    let app = spawn_app(Functions::all(), &[]).await;
    let body = json!({"images": ["a.jpg"]});
    for value in ["true", "false", "1", "0"] {
        for route in ["quality", "duplicates"] {
            let resp = app
                .post_json(&format!("/api/albums/{route}?detail={value}"), &body)
                .await;
            assert_eq!(resp.status(), 201, "{route}?detail={value}");
        }
    }
    for value in ["yes", "2", "", "TRUE%00"] {
        let resp = app
            .post_json(&format!("/api/albums/quality?detail={value}"), &body)
            .await;
        expect_error(resp, 400, "invalid_request", "detail").await;
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_the_envelope() {
    let app = spawn_app(Functions::all(), &[]).await;
    let missing = reqwest::get(app.url("/api/albums/nothing-here")).await.unwrap();
    expect_error(missing, 404, "not_found", "/api/albums/nothing-here").await;
    let missing = app.post_json("/no/such/route", &json!({})).await;
    expect_error(missing, 404, "not_found", "/no/such/route").await;

    let wrong = reqwest::get(app.url("/api/albums/quality")).await.unwrap();
    assert_eq!(
        wrong.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("POST"),
        "405 names the methods the route takes"
    );
    expect_error(wrong, 405, "method_not_allowed", "POST").await;
    let wrong = app
        .client
        .delete(app.url("/api/albums/style/6f1c9b7e-0000-4000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert!(wrong.headers()["allow"].to_str().unwrap().contains("GET"));
    expect_error(wrong, 405, "method_not_allowed", "GET").await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let token = "a-test-token-of-sufficient-length";
    let app = spawn_app(Functions::all(), &[("ONGI_API_TOKEN", token)]).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let resp = app
            .client
            .get(app.url("/readyz"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
    for header in [format!("Basic {token}"), format!("Bearer{token}"), token.to_owned()] {
        let resp = app
            .client
            .get(app.url("/readyz"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{header}");
    }
}

#[tokio::test]
async fn a_bucket_is_named_by_its_name_in_errors() {
    let app = spawn_app(Functions::all(), &[]).await;
    let resp = app
        .post_json("/batch/reprocess", &json!({"bucket": "other", "prefix": ""}))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("\"other\"") || error.contains("bucket other "),
        "{error}"
    );
    assert!(!error.contains("BucketName"), "a Debug dump of a domain type: {error}");
}

#[tokio::test]
async fn empty_blank_and_control_character_concepts_are_refused_by_index() {
    let app = spawn_app(Functions::all(), &[]).await;
    for (i, bad) in [
        "",
        " ",
        "\t\n",
        "a\u{0}b",
        "two\nlines",
        "bell\u{7}",
        "del\u{7f}",
        "\u{a0}\u{a0}",
    ]
    .iter()
    .enumerate()
    {
        let concepts = json!(["여행", bad]);
        let resp = app
            .post_json(
                "/api/albums/categories",
                &json!({"images": ["a.jpg"], "concepts": concepts}),
            )
            .await;
        assert_eq!(resp.status(), 400, "case {i}: {bad:?}");
        expect_error(resp, 400, "invalid_request", "concepts[1]").await;
    }
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_request_is_a_conflict() {
    let app = spawn_app(
        Functions::all(),
        &[
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &crate::support::unique_prefix()),
        ],
    )
    .await;
    let uploads = app.data_dir().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    for (name, shade) in [("a.png", 40u8), ("b.png", 200u8)] {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([shade, (x * 3) as u8, (y * 5) as u8]));
        img.save(uploads.join(name)).unwrap();
    }
    let key = format!("key-{}", uuid::Uuid::new_v4());
    let first = app
        .post_json(
            "/api/albums/style",
            &json!({"image": "a.png", "style": "ghibli", "steps": 2, "idempotency_key": key}),
        )
        .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let job = first["data"]["job_id"].as_str().unwrap().to_owned();

    // The same request again: the same job (by the body field, or by the header).
    let again = app
        .post_json(
            "/api/albums/style",
            &json!({"image": "a.png", "style": "ghibli", "steps": 2, "idempotency_key": key}),
        )
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap()["data"]["job_id"], job.as_str());
    let by_header = app
        .client
        .post(app.url("/api/albums/style"))
        .header("idempotency-key", &key)
        .json(&json!({"image": "a.png", "style": "ghibli", "steps": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 202);
    assert_eq!(by_header.json::<Value>().await.unwrap()["data"]["job_id"], job.as_str());

    for other in [
        json!({"image": "b.png", "style": "ghibli", "steps": 2}),
        json!({"image": "a.png", "style": "watercolor", "steps": 2}),
        json!({"image": "a.png", "style": "ghibli", "steps": 3}),
        json!({"image": "a.png", "style": "ghibli", "steps": 2, "strength": 0.9}),
        json!({"image": "a.png", "style": "ghibli", "steps": 2, "seed": 7}),
    ] {
        let mut body = other.clone();
        body["idempotency_key"] = json!(key);
        let resp = app.post_json("/api/albums/style", &body).await;
        expect_error(resp, 409, "conflict", &key).await;
    }
}
