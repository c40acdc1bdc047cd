//! [`Settings::from_lookup`] against its defaults, every setting's range and its secrets.

use super::*;
use std::collections::HashMap;

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_need_no_setting() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.port, 8080);
    assert_eq!(s.storage, StorageBackend::Local);
    assert_eq!(s.bucket.as_str(), "uploads");
    assert_eq!(s.results_bucket.as_str(), "results");
    assert_eq!(s.data_dir, PathBuf::from("data"));
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.redis_url.is_none());
    assert_eq!(s.limits, IngestLimits::default());
    assert_eq!(s.reprocess, ReprocessSettings::default());
    assert_eq!(s.analysis, AnalysisSettings::default());
    assert_eq!(s.analysis.concept_text_ttl, Duration::from_secs(86_400));
}

#[test]
fn malformed_settings_name_themselves_in_one_line() {
    for (name, value) in [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("REDIS_URL", "localhost:6379"),
        ("ONGI_BUCKET", "Bad_Bucket!"),
        ("ONGI_LOG_FORMAT", "xml"),
        ("ONGI_FACE_DETECTOR", "haar"),
        ("ONGI_STORAGE", "s3"),
        ("ONGI_MAX_IMAGE_BYTES", "-1"),
        ("EMBEDDING_URL", "ftp://x"),
        ("ONGI_CACHE_TTL_SECS", "0"),
        ("ONGI_NEAR_CACHE_MB", "lots"),
        ("ONGI_NEAR_CACHE_MB", "70000"),
        ("ONGI_STYLE_MAX_ATTEMPTS", "0"),
        ("ONGI_STYLE_DEVICE", "tpu"),
        ("ONGI_PUBLISH", "yes"),
        ("ONGI_REPROCESS_BUDGET_SECS", "0"),
        ("ONGI_REPROCESS_CONCURRENCY", "many"),
    ] {
        let err = settings(&[(name, value)]).unwrap_err();
        let line = err.to_string();
        assert!(line.contains(name), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}

/// Every numeric and string setting against values out of its documented range: each
/// gives one line naming that setting (and only that one).
#[test]
fn every_setting_refuses_values_out_of_its_range() {
    let numbers = ["NaN", "nan", "inf", "-inf", "infinity", "1e999"];
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for name in [
        "ONGI_CATEGORY_FLOOR",
        "ONGI_DUPLICATE_COSINE",
        "ONGI_QUALITY_BLUR",
        "ONGI_QUALITY_DARK_FRACTION",
        "ONGI_QUALITY_BRIGHT_FRACTION",
        "ONGI_QUALITY_CLIP_PROBABILITY",
    ] {
        cases.extend(numbers.iter().map(|v| (name, *v)));
        cases.push((name, "-5"));
        cases.push((name, "abc"));
    }
    cases.extend([
        ("ONGI_CATEGORY_FLOOR", "1.5"),
        ("ONGI_CATEGORY_FLOOR", "-1.01"),
        ("ONGI_DUPLICATE_COSINE", "-2"),
        ("ONGI_QUALITY_BLUR", "-0.5"),
        ("ONGI_QUALITY_DARK_FRACTION", "5"),
        ("ONGI_QUALITY_DARK_FRACTION", "1.0001"),
        ("ONGI_QUALITY_BRIGHT_FRACTION", "-0.1"),
        ("ONGI_QUALITY_CLIP_PROBABILITY", "1.5"),
    ]);
    for name in [
        "ONGI_HIGHLIGHTS",
        "ONGI_STYLE_MAX_QUEUE",
        "ONGI_STYLE_MAX_ATTEMPTS",
        "ONGI_STYLE_RECLAIM_SECS",
        "ONGI_STYLE_JOB_TTL_SECS",
        "ONGI_STYLE_STALL_SECS",
        "ONGI_REPROCESS_BUDGET_SECS",
        "ONGI_REPROCESS_CONCURRENCY",
        "ONGI_MAX_IN_FLIGHT",
        "ONGI_MAX_IMAGE_BYTES",
        "ONGI_MAX_IMAGE_PIXELS",
        "ONGI_CACHE_TTL_SECS",
        "ONGI_TEXT_CACHE_TTL_SECS",
    ] {
        for v in ["0", "-1", "1.5", "NaN", "ten", "18446744073709551616"] {
            cases.push((name, v));
        }
    }
    cases.extend([
        ("ONGI_HIGHLIGHTS", "1001"),
        ("ONGI_MAX_IN_FLIGHT", "18446744073709551615"),
        ("ONGI_REPROCESS_BUDGET_SECS", "3601"),
        ("ONGI_REPROCESS_CONCURRENCY", "100000"),
        ("ONGI_CACHE_TTL_SECS", "18446744073709551615"),
        ("ONGI_STYLE_JOB_TTL_SECS", "18446744073709551615"),
        ("ONGI_STYLE_RECLAIM_SECS", "18446744073709551615"),
        ("ONGI_TEXT_CACHE_TTL_SECS", "18446744073709551615"),
        ("PORT", "-1"),
        ("PORT", "65536"),
        ("ONGI_HOST", "localhost"),
        ("ONGI_CACHE_PREFIX", ""),
        ("ONGI_CACHE_PREFIX", "   "),
        ("ONGI_CACHE_PREFIX", "has space:"),
        ("ONGI_CACHE_PREFIX", "nul\u{0}:"),
        ("ONGI_FEATURES_TOPIC", "a b"),
        ("ONGI_FEATURES_TOPIC", "ab"),
        ("ONGI_FEATURES_TOPIC", "9starts-with-a-digit"),
        ("ONGI_RESULTS_TOPIC", "topic/with/slashes"),
        ("GEMINI_MODEL", "gemini/../../v1"),
        ("GEMINI_MODEL", "a model"),
        ("GEMINI_API_KEY", "key\nwith-a-newline"),
        ("GOOGLE_CLOUD_PROJECT", "Has Spaces"),
        ("PUBSUB_EMULATOR_HOST", "no-port"),
        ("PUBSUB_EMULATOR_HOST", "host:notaport"),
        ("STORAGE_EMULATOR_HOST", "http://"),
        ("EMBEDDING_URL", "https://bad host"),
        ("GEMINI_ENDPOINT", "ftp://x"),
        ("REDIS_URL", "http://localhost"),
        ("ONGI_DECODE_MEMORY_MB", "15"),
        ("ONGI_DECODE_MEMORY_MB", "65537"),
        ("ONGI_DECODE_MEMORY_MB", "NaN"),
        ("ONGI_READ_TIMEOUT_SECS", "0"),
        ("ONGI_READ_TIMEOUT_SECS", "601"),
    ]);
    for (name, value) in cases {
        let err = match settings(&[(name, value)]) {
            Ok(_) => panic!("{name}={value:?} was accepted"),
            Err(e) => e,
        };
        let line = err.to_string();
        assert_eq!(err.name, name, "{name}={value:?}: {line}");
        assert!(line.contains(name), "{line}");
        assert!(!line.contains('\n'), "one line: {line:?}");
    }
}

/// The documented edges are accepted: a duplicate cosine above 1 turns the tier off,
/// a CLIP probability of 0 turns the CLIP tests off, fractions include 0 and 1.
#[test]
fn documented_edge_values_are_accepted() {
    for (name, value) in [
        ("ONGI_DUPLICATE_COSINE", "1.01"),
        ("ONGI_DUPLICATE_COSINE", "2"),
        ("ONGI_DUPLICATE_COSINE", "-1"),
        ("ONGI_CATEGORY_FLOOR", "-1"),
        ("ONGI_CATEGORY_FLOOR", "1"),
        ("ONGI_QUALITY_CLIP_PROBABILITY", "0"),
        ("ONGI_QUALITY_DARK_FRACTION", "0"),
        ("ONGI_QUALITY_BRIGHT_FRACTION", "1"),
        ("ONGI_QUALITY_BLUR", "0"),
        ("ONGI_HIGHLIGHTS", "1"),
        ("ONGI_MAX_IN_FLIGHT", "1"),
        ("ONGI_REPROCESS_BUDGET_SECS", "3600"),
        ("PORT", "0"),
        ("ONGI_CACHE_PREFIX", "tenant-a:"),
        ("ONGI_TEXT_CACHE_TTL_SECS", "60"),
        ("ONGI_DECODE_MEMORY_MB", "16"),
        ("ONGI_READ_TIMEOUT_SECS", "600"),
    ] {
        settings(&[(name, value)]).unwrap_or_else(|e| panic!("{name}={value:?}: {e}"));
    }
}

#[test]
fn settings_logged_whole_hold_no_credential() {
    let s = settings(&[
        ("REDIS_URL", "redis://:redis-s3cret@10.0.0.3:6379/0"),
        ("EMBEDDING_URL", "https://user:embed-s3cret@embedding.run.app"),
        ("GEMINI_ENDPOINT", "https://proxy.example/gemini?key=gemini-s3cret"),
        ("STORAGE_EMULATOR_HOST", "http://gcs-user:gcs-s3cret@127.0.0.1:4443"),
        ("GEMINI_API_KEY", "key-s3cret"),
        ("ONGI_API_TOKEN", "token-s3cret-0123456789"),
    ])
    .unwrap();
    let dump = format!("{s:?}");
    assert!(!dump.contains("s3cret"), "{dump}");
    assert!(dump.contains("10.0.0.3:6379") && dump.contains("[redacted]"), "{dump}");
    assert_eq!(
        s.redis_url.as_ref().map(SecretUrl::expose),
        Some("redis://:redis-s3cret@10.0.0.3:6379/0")
    );
    // A malformed URL setting is named without its credentials too.
    let err = settings(&[("REDIS_URL", "http://:redis-s3cret@host")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("REDIS_URL") && !err.contains("redis-s3cret"), "{err}");
    let err = settings(&[("GEMINI_API_KEY", "key s3cret")]).unwrap_err().to_string();
    assert!(err.contains("GEMINI_API_KEY") && !err.contains("s3cret"), "{err}");
}

#[test]
fn emulator_host_selects_gcs_and_gets_a_scheme() {
    let s = settings(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]).unwrap();
    assert_eq!(s.storage, StorageBackend::Gcs);
    assert_eq!(
        s.storage_emulator_host.as_ref().map(SecretUrl::expose),
        Some("http://127.0.0.1:4443")
    );
}

#[test]
fn an_emulator_host_gets_http_unless_it_has_a_scheme() {
    assert_eq!(parse::with_http_scheme("127.0.0.1:8085"), "http://127.0.0.1:8085");
    assert_eq!(parse::with_http_scheme("http://pubsub:8085"), "http://pubsub:8085");
    assert_eq!(parse::with_http_scheme("https://gcs.test"), "https://gcs.test");
    assert_eq!(
        parse::http_base("ftp://x:21"),
        Err("an http:// or https:// URL".to_owned())
    );
}

#[test]
fn urls_that_would_fail_at_start_up_are_refused_when_read() {
    for bad in ["::::", "host:port", "http://", "http://:8080", "[::1", "http://a b"] {
        let err = settings(&[("STORAGE_EMULATOR_HOST", bad)]).unwrap_err();
        assert_eq!(err.name, "STORAGE_EMULATOR_HOST", "{bad}: {err}");
    }
    assert!(settings(&[("STORAGE_EMULATOR_HOST", "[::1]:4443")]).is_ok());
}

#[test]
fn downloads_come_over_https_or_from_this_machine() {
    for bad in [
        "javascript:alert(1)",
        "http://mirror.example/ort",
        "ftp://x",
        "file:///tmp",
        "mirror.example",
        "https://",
    ] {
        let err = settings(&[("ONGI_ORT_DOWNLOAD_URL", bad)]).unwrap_err();
        assert_eq!(err.name, "ONGI_ORT_DOWNLOAD_URL", "{bad}: {err}");
    }
    for good in [
        "https://mirror.example/ort",
        "http://127.0.0.1:8000/ort",
        "http://localhost:1/x",
        "http://[::1]:9/x",
    ] {
        let s = settings(&[("ONGI_ORT_DOWNLOAD_URL", good)]).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(s.ort_download_url, good);
    }
}

#[test]
fn image_limits_have_a_ceiling() {
    for (name, bad) in [
        ("ONGI_MAX_IMAGE_BYTES", "18446744073709551615"),
        ("ONGI_MAX_IMAGE_BYTES", "1073741825"),
        ("ONGI_MAX_IMAGE_PIXELS", "18446744073709551615"),
        ("ONGI_MAX_IMAGE_PIXELS", "0"),
    ] {
        let err = settings(&[(name, bad)]).unwrap_err();
        assert_eq!(err.name, name, "{bad}: {err}");
    }
    let s = settings(&[
        ("ONGI_MAX_IMAGE_BYTES", "1073741824"),
        ("ONGI_MAX_IMAGE_PIXELS", "4294836225"),
    ])
    .unwrap();
    assert_eq!((s.limits.max_bytes, s.limits.max_pixels), (1 << 30, 65_535 * 65_535));
}

#[test]
fn gcs_without_project_or_emulator_is_missing_a_setting() {
    let err = settings(&[("ONGI_STORAGE", "gcs")]).unwrap_err();
    assert_eq!(err.name, "GOOGLE_CLOUD_PROJECT");
}

#[test]
fn cloud_run_defaults_to_json_logs_and_secrets_are_redacted() {
    let s = settings(&[
        ("K_SERVICE", "quality"),
        ("GOOGLE_CLOUD_PROJECT", "p"),
        ("GEMINI_API_KEY", "sk-very-secret"),
    ])
    .unwrap();
    assert_eq!(s.log_format, LogFormat::Json);
    let dump = format!("{s:?}");
    assert!(!dump.contains("sk-very-secret"), "{dump}");
    assert_eq!(s.gemini.api_key.unwrap().expose(), "sk-very-secret");
}
