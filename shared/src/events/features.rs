//! `ongi-features` messages as they arrive by Pub/Sub push: the envelope, the base64 data,
//! the `ongi.features.v1` body, and the bucket and content hash it names, all checked here
//! so the per-photo route only ever sees a message it can act on.

use base64::Engine;
use serde::Deserialize;

use super::publish::{FEATURES_SCHEMA, FeaturesMessage};
use crate::domain::{BucketName, ContentHash};

/// Why a message cannot be used. Always permanent: a retry of the same bytes cannot help,
/// so the route acknowledges it (with an error log) instead of letting Pub/Sub redeliver it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct MalformedMessage(pub String);

/// A features message whose bucket and content hash are valid.
#[derive(Debug, Clone)]
pub struct AnnouncedFeatures {
    pub message: FeaturesMessage,
    pub bucket: BucketName,
    pub hash: ContentHash,
}

#[derive(Deserialize)]
struct Push {
    message: PushMessage,
}

#[derive(Deserialize)]
struct PushMessage {
    #[serde(default)]
    data: String,
}

fn malformed(why: String) -> MalformedMessage {
    MalformedMessage(why)
}

/// Parses one Pub/Sub push body of the `ongi-features` topic.
pub fn parse_push(body: &[u8]) -> Result<AnnouncedFeatures, MalformedMessage> {
    let push: Push =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not a Pub/Sub push envelope: {e}")))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(push.message.data.trim())
        .map_err(|e| malformed(format!("message data is not base64: {e}")))?;
    let message: FeaturesMessage =
        serde_json::from_slice(&data).map_err(|e| malformed(format!("not an {FEATURES_SCHEMA} message: {e}")))?;
    if message.schema != FEATURES_SCHEMA {
        return Err(malformed(format!(
            "schema {:?}, expected {FEATURES_SCHEMA}",
            message.schema
        )));
    }
    let bucket = BucketName::parse(&message.bucket)
        .map_err(|_| malformed(format!("bucket {:?} is not a bucket name", message.bucket)))?;
    let hash = ContentHash::from_hex(&message.content_hash)
        .ok_or_else(|| malformed("content_hash is not SHA-256 hex".into()))?;
    Ok(AnnouncedFeatures { message, bucket, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(data: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        serde_json::to_vec(&serde_json::json!({"message": {"data": b64}, "subscription": "s"})).unwrap()
    }

    fn message(bucket: &str, hash: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schema": FEATURES_SCHEMA, "bucket": bucket, "object": "a.jpg", "generation": 3,
            "content_hash": hash, "model": "m", "computed": true,
        }))
        .unwrap()
    }

    #[test]
    fn accepts_a_valid_message() {
        let hash = "ab".repeat(32);
        let ok = parse_push(&push(&message("uploads", &hash))).unwrap();
        assert_eq!(ok.bucket.as_str(), "uploads");
        assert_eq!(ok.hash.to_hex(), hash);
        assert_eq!(ok.message.object, "a.jpg");
    }

    #[test]
    fn names_what_is_wrong() {
        let hash = "ab".repeat(32);
        let cases: [(Vec<u8>, &str); 5] = [
            (b"{".to_vec(), "not a Pub/Sub push envelope"),
            (br#"{"message": {"data": "%%%"}}"#.to_vec(), "not base64"),
            (push(b"[1]"), "not an ongi.features.v1 message"),
            (push(&message("Not A Bucket!", &hash)), "is not a bucket name"),
            (push(&message("uploads", "xyz")), "content_hash is not SHA-256 hex"),
        ];
        for (body, want) in cases {
            let err = parse_push(&body).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should say {want}");
        }
    }
}
