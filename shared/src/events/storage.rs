//! GCS upload notifications, hand-parsed: the three envelopes are small and fixed, and the
//! CloudEvents SDK would bring a dependency tree larger than this file for one header map.
//!
//! - Eventarc, binary mode: `ce-type`, `ce-source`, `ce-subject` headers; the body is the
//!   object's metadata (`StorageObjectData`: `bucket`, `name`, `generation`, `contentType`).
//! - Eventarc, structured mode: `Content-Type: application/cloudevents+json`; the same
//!   fields inside one JSON object, the metadata under `data`.
//! - Pub/Sub push of a GCS notification: `{"message": {"attributes": {"eventType",
//!   "bucketId", "objectId", "objectGeneration"}, "data": base64 metadata}, "subscription"}`.

use base64::Engine;
use http::HeaderMap;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEventKind {
    /// A new object (or a new generation of one): compute its features.
    Finalized,
    /// Deleted, archived, metadata updated: nothing to compute.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageEvent {
    pub kind: StorageEventKind,
    pub bucket: String,
    pub object: String,
    pub generation: i64,
    pub content_type: Option<String>,
    /// Which envelope carried it (for logs): `cloudevent-binary`, `cloudevent-structured`, `pubsub`.
    pub envelope: &'static str,
}

/// Why an event cannot be used. Always permanent: a retry of the same bytes cannot help.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("malformed storage event: {0}")]
pub struct EventError(pub String);

fn err(msg: impl Into<String>) -> EventError {
    EventError(msg.into())
}

/// The object metadata GCS puts in notifications (only the fields we use).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ObjectData {
    bucket: Option<String>,
    name: Option<String>,
    /// A decimal string in the JSON API; tolerate a number too.
    generation: Option<serde_json::Value>,
    content_type: Option<String>,
}

fn parse_generation(v: Option<&serde_json::Value>) -> Result<i64, EventError> {
    match v {
        Some(serde_json::Value::String(s)) => s.parse().map_err(|_| err(format!("generation {s:?} is not a number"))),
        Some(serde_json::Value::Number(n)) => n.as_i64().ok_or_else(|| err("generation is not an integer")),
        Some(_) => Err(err("generation is not a number")),
        None => Err(err("the event names no object generation")),
    }
}

/// `google.cloud.storage.object.v1.finalized` → Finalized; anything else is named.
fn cloudevent_kind(ce_type: &str) -> StorageEventKind {
    if ce_type == "google.cloud.storage.object.v1.finalized" {
        StorageEventKind::Finalized
    } else {
        StorageEventKind::Other(ce_type.to_owned())
    }
}

/// `//storage.googleapis.com/projects/_/buckets/BUCKET` → `BUCKET`.
fn bucket_from_source(source: &str) -> Option<&str> {
    source
        .rsplit_once("/buckets/")
        .map(|(_, b)| b)
        .filter(|b| !b.is_empty())
}

fn from_object_data(
    kind: StorageEventKind,
    data: ObjectData,
    fallback_bucket: Option<&str>,
    fallback_object: Option<&str>,
    envelope: &'static str,
) -> Result<StorageEvent, EventError> {
    let bucket = data
        .bucket
        .or_else(|| fallback_bucket.map(str::to_owned))
        .ok_or_else(|| err("the event names no bucket"))?;
    let object = data
        .name
        .or_else(|| fallback_object.map(str::to_owned))
        .ok_or_else(|| err("the event names no object"))?;
    let generation = parse_generation(data.generation.as_ref())?;
    Ok(StorageEvent {
        kind,
        bucket,
        object,
        generation,
        content_type: data.content_type,
        envelope,
    })
}

#[derive(Deserialize)]
struct PushEnvelope {
    message: PushMessage,
}

#[derive(Deserialize)]
struct PushMessage {
    #[serde(default)]
    attributes: std::collections::HashMap<String, String>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
struct StructuredEvent {
    #[serde(rename = "type")]
    ce_type: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// Parses whichever of the three envelopes the request carries, and checks that the event
/// names a valid bucket, an object and a positive generation (GCS never sends less; the
/// fuzzer found envelopes that named none, which must be refused here, not further on).
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<StorageEvent, EventError> {
    let event = parse_envelope(headers, body)?;
    if crate::domain::BucketName::parse(&event.bucket).is_err() {
        let shown: String = event.bucket.chars().take(80).collect();
        return Err(err(format!("the event names an invalid bucket {shown:?}")));
    }
    if event.object.is_empty() {
        return Err(err("the event names an empty object"));
    }
    if event.object.len() > crate::domain::MAX_REF_BYTES {
        return Err(err("the event's object name is longer than GCS allows"));
    }
    if event.generation < 1 {
        return Err(err(format!("generation {} is not positive", event.generation)));
    }
    Ok(event)
}

fn parse_envelope(headers: &HeaderMap, body: &[u8]) -> Result<StorageEvent, EventError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ce_type) = header("ce-type") {
        let data: ObjectData = if body.is_empty() {
            ObjectData::default()
        } else {
            serde_json::from_slice(body).map_err(|e| err(format!("the CloudEvent data is not object metadata: {e}")))?
        };
        let subject_object = header("ce-subject").and_then(|s| s.strip_prefix("objects/"));
        return from_object_data(
            cloudevent_kind(ce_type),
            data,
            header("ce-source").and_then(bucket_from_source),
            subject_object,
            "cloudevent-binary",
        );
    }
    if header("content-type").is_some_and(|c| c.starts_with("application/cloudevents+json")) {
        let ev: StructuredEvent =
            serde_json::from_slice(body).map_err(|e| err(format!("not a structured CloudEvent: {e}")))?;
        let data: ObjectData = match ev.data {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| err(format!("the CloudEvent data is not object metadata: {e}")))?,
            None => ObjectData::default(),
        };
        let subject_object = ev.subject.as_deref().and_then(|s| s.strip_prefix("objects/"));
        return from_object_data(
            cloudevent_kind(&ev.ce_type),
            data,
            ev.source.as_deref().and_then(bucket_from_source),
            subject_object,
            "cloudevent-structured",
        );
    }
    let push: PushEnvelope = serde_json::from_slice(body)
        .map_err(|e| err(format!("neither a CloudEvent nor a Pub/Sub push envelope: {e}")))?;
    let attrs = &push.message.attributes;
    let event_type = attrs
        .get("eventType")
        .ok_or_else(|| err("the Pub/Sub message has no eventType attribute (not a GCS notification)"))?;
    let kind = if event_type == "OBJECT_FINALIZE" {
        StorageEventKind::Finalized
    } else {
        StorageEventKind::Other(event_type.clone())
    };
    let data: ObjectData = match push.message.data.as_deref().filter(|d| !d.is_empty()) {
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| err(format!("message data is not base64: {e}")))?;
            serde_json::from_slice(&raw).unwrap_or_default()
        }
        None => ObjectData::default(),
    };
    let mut event = from_object_data(
        kind,
        ObjectData {
            generation: data.generation.or_else(|| {
                attrs
                    .get("objectGeneration")
                    .map(|g| serde_json::Value::String(g.clone()))
            }),
            ..data
        },
        attrs.get("bucketId").map(String::as_str),
        attrs.get("objectId").map(String::as_str),
        "pubsub",
    )?;
    // The attributes are authoritative for the object's identity.
    if let (Some(b), Some(o)) = (attrs.get("bucketId"), attrs.get("objectId")) {
        event.bucket = b.clone();
        event.object = o.clone();
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn binary_cloudevent() {
        let h = headers(&[
            ("ce-type", "google.cloud.storage.object.v1.finalized"),
            ("ce-source", "//storage.googleapis.com/projects/_/buckets/uploads"),
            ("ce-subject", "objects/a/b.jpg"),
            ("content-type", "application/json"),
        ]);
        let body =
            br#"{"bucket":"uploads","name":"a/b.jpg","generation":"1700000000000001","contentType":"image/jpeg"}"#;
        let e = parse(&h, body).unwrap();
        assert_eq!(e.kind, StorageEventKind::Finalized);
        assert_eq!(
            (e.bucket.as_str(), e.object.as_str(), e.generation),
            ("uploads", "a/b.jpg", 1_700_000_000_000_001)
        );
        assert_eq!(e.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(e.envelope, "cloudevent-binary");
    }

    #[test]
    fn structured_cloudevent_and_deletes() {
        let h = headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]);
        let body = br#"{"specversion":"1.0","id":"1","type":"google.cloud.storage.object.v1.deleted",
            "source":"//storage.googleapis.com/projects/_/buckets/uploads","subject":"objects/x.jpg",
            "data":{"bucket":"uploads","name":"x.jpg","generation":"5"}}"#;
        let e = parse(&h, body).unwrap();
        assert_eq!(
            e.kind,
            StorageEventKind::Other("google.cloud.storage.object.v1.deleted".into())
        );
        assert_eq!(e.generation, 5);
        assert_eq!(e.envelope, "cloudevent-structured");
    }

    #[test]
    fn pubsub_push_of_a_gcs_notification() {
        let data = base64::engine::general_purpose::STANDARD
            .encode(br#"{"bucket":"uploads","name":"p.webp","generation":"42","contentType":"image/webp"}"#);
        let body = format!(
            r#"{{"message":{{"attributes":{{"eventType":"OBJECT_FINALIZE","bucketId":"uploads","objectId":"p.webp","objectGeneration":"42","payloadFormat":"JSON_API_V1"}},"data":"{data}","messageId":"1"}},"subscription":"projects/p/subscriptions/s"}}"#
        );
        let e = parse(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(e.kind, StorageEventKind::Finalized);
        assert_eq!(
            (e.bucket.as_str(), e.object.as_str(), e.generation),
            ("uploads", "p.webp", 42)
        );
        assert_eq!(e.envelope, "pubsub");
    }

    #[test]
    fn malformed_events_say_why() {
        assert!(parse(&HeaderMap::new(), b"not json").unwrap_err().0.contains("neither"));
        assert!(
            parse(&HeaderMap::new(), br#"{"message":{"attributes":{}}}"#)
                .unwrap_err()
                .0
                .contains("eventType")
        );
        let h = headers(&[("ce-type", "google.cloud.storage.object.v1.finalized")]);
        assert!(
            parse(&h, br#"{"bucket":"uploads","name":"a.jpg"}"#)
                .unwrap_err()
                .0
                .contains("generation")
        );
        assert!(parse(&h, br#"{"bucket":"uploads","name":"a.jpg","generation":"x"}"#).is_err());
    }

    /// Found by the `storage_event` fuzz target: an empty `ce-type` and a JSON array body
    /// (serde fills a struct from an array by position) gave an event with no bucket.
    #[test]
    fn events_without_bucket_object_or_a_positive_generation_are_refused() {
        let h = headers(&[("ce-type", "")]);
        let e = parse(&h, br#"["","","-2003764205206896638",""]"#).unwrap_err();
        assert!(e.0.contains("invalid bucket"), "{e}");
        let h = headers(&[("ce-type", "google.cloud.storage.object.v1.finalized")]);
        let e = parse(&h, br#"{"bucket":"uploads","name":"","generation":"3"}"#).unwrap_err();
        assert!(e.0.contains("empty object"), "{e}");
        let e = parse(&h, br#"{"bucket":"uploads","name":"a.jpg","generation":"0"}"#).unwrap_err();
        assert!(e.0.contains("not positive"), "{e}");
        let e = parse(&h, br#"{"bucket":"Not/A/Bucket","name":"a.jpg","generation":"3"}"#).unwrap_err();
        assert!(e.0.contains("invalid bucket"), "{e}");
    }
}
