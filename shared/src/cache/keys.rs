//! Every cache key, built in one place. Keys carry a schema version and the model id, so a
//! new model or a new record layout never reads old values: it simply misses.
//!
//! `{prefix}v{schema}:{kind}:{model}:{id}`, e.g. `ongi:v1:feat:clip-vit-b32@2f1c:9a0b…`.
//! The prefix (default `ongi:`) lets tests share one Redis without seeing each other.

use crate::domain::{BucketName, ContentHash};

/// Bumped whenever the layout or the meaning of a cached record changes (3: JPEG records
/// carry their EXIF capture time, which the duplicate tiers read).
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    key: String,
    immutable: bool,
}

impl CacheKey {
    /// A key whose value never changes once written.
    fn immutable(key: String) -> Self {
        Self { key, immutable: true }
    }

    /// A key whose value a later write replaces.
    fn mutable(key: String) -> Self {
        Self { key, immutable: false }
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Whether the value under this key can never change, so that a copy kept in this
    /// process stays right (the near cache keeps only these): everything keyed by content
    /// hash, by text, or by an object *generation* (whose bytes storage never changes). Not
    /// so the `latest` alias (a new upload moves it), failure marks, or a batch run's state.
    pub fn is_immutable(&self) -> bool {
        self.immutable
    }
}

#[derive(Debug, Clone)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// `{prefix}v{schema}:{kind}:{model}:{id}` for a value computed from `id` (a content
    /// hash or a text): the same input always gives the same value.
    fn key(&self, kind: &str, model: &str, id: &str) -> CacheKey {
        CacheKey::immutable(format!("{}v{SCHEMA_VERSION}:{kind}:{model}:{id}", self.prefix))
    }

    /// The per-photo feature record computed by `model` from the photo's bytes.
    pub fn features(&self, model: &str, hash: &ContentHash) -> CacheKey {
        self.key("feat", model, &hash.to_hex())
    }

    /// `bucket/object#generation` → content hash, so a repeated upload event needs no download.
    pub fn alias(&self, bucket: &BucketName, object: &str, generation: i64) -> CacheKey {
        CacheKey::immutable(format!(
            "{}v{SCHEMA_VERSION}:alias:{bucket}/{object}#{generation}",
            self.prefix
        ))
    }

    /// `bucket/object` → the generation and hash last computed for it: lets an album call
    /// find its photos' features in one round trip without asking storage for generations.
    pub fn latest(&self, bucket: &BucketName, object: &str) -> CacheKey {
        CacheKey::mutable(format!("{}v{SCHEMA_VERSION}:latest:{bucket}/{object}", self.prefix))
    }

    /// The faces found in a photo by a detector + embedder pair.
    pub fn faces(&self, models: &str, hash: &ContentHash) -> CacheKey {
        self.key("faces", models, &hash.to_hex())
    }

    /// A module's per-photo result (JSON), computed from the features of `model`.
    pub fn result(&self, module: &str, model: &str, hash: &ContentHash) -> CacheKey {
        self.key(&format!("result:{module}"), model, &hash.to_hex())
    }

    /// A photo generation whose processing failed for good under `model` (it cannot be read:
    /// corrupt, unsupported, too large), with the reason: a batch run does not retry it.
    pub fn failure(&self, model: &str, bucket: &BucketName, object: &str, generation: i64) -> CacheKey {
        let CacheKey { key, .. } = self.key("failed", model, &format!("{bucket}/{object}#{generation}"));
        CacheKey::mutable(key)
    }

    /// Bytes that cannot be decoded (corrupt, unsupported, too large) under the limits and
    /// decode options that `decode` names, with the reason: the same bytes under any name are
    /// refused again without a decode. Other limits or options are another key, so raising a
    /// limit gives a photo its chance again.
    pub fn undecodable(&self, decode: &str, hash: &ContentHash) -> CacheKey {
        self.key("undecodable", decode, &hash.to_hex())
    }

    /// Where a batch reprocessing run resumes (`run` names the bucket, prefix, since, steps and model).
    pub fn reprocess_cursor(&self, run: &str) -> CacheKey {
        CacheKey::mutable(format!("{}v{SCHEMA_VERSION}:reprocess:cursor:{run}", self.prefix))
    }

    /// The lease of the call currently walking `run`: two overlapping calls would do the same work.
    pub fn reprocess_lease(&self, run: &str) -> CacheKey {
        CacheKey::mutable(format!("{}v{SCHEMA_VERSION}:reprocess:lease:{run}", self.prefix))
    }

    /// A text embedding of one of Ongi's own prompts (the taxonomy's, the quality pairs'),
    /// keyed by the hash of the text.
    pub fn text(&self, model: &str, text: &str) -> CacheKey {
        self.key("text", model, &ContentHash::of(text.as_bytes()).to_hex())
    }

    /// A text embedding of a prompt made from a caller's concept. A keyspace of its own, so
    /// these short-lived entries never replace (and shorten) a taxonomy prompt's entry, and an
    /// operator can count or drop them apart.
    pub fn concept_text(&self, model: &str, text: &str) -> CacheKey {
        self.key("concept", model, &ContentHash::of(text.as_bytes()).to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_schema_model_and_prefix() {
        let ks = Keyspace::new("t1:");
        let h = ContentHash::of(b"photo");
        let a = ks.features("clip-a", &h);
        let b = ks.features("clip-b", &h);
        assert!(a.as_str().starts_with("t1:v3:feat:clip-a:"));
        assert_ne!(a, b, "a new model must never read the old model's vectors");
        let bucket = BucketName::parse("uploads").unwrap();
        assert_eq!(ks.alias(&bucket, "a.jpg", 7).as_str(), "t1:v3:alias:uploads/a.jpg#7");
        assert_ne!(ks.text("m", "a dog"), ks.text("m", "a cat"));
        assert_ne!(ks.text("m", "a dog"), ks.concept_text("m", "a dog"));
    }

    #[test]
    fn only_keys_whose_value_cannot_change_are_immutable() {
        let ks = Keyspace::new("t1:");
        let (h, bucket) = (ContentHash::of(b"photo"), BucketName::parse("uploads").unwrap());
        for key in [
            ks.features("m", &h),
            ks.alias(&bucket, "a.jpg", 7),
            ks.faces("m", &h),
            ks.result("quality", "m", &h),
            ks.undecodable("d", &h),
            ks.text("m", "a dog"),
            ks.concept_text("m", "a dog"),
        ] {
            assert!(key.is_immutable(), "{key:?}");
        }
        for key in [
            ks.latest(&bucket, "a.jpg"),
            ks.failure("m", &bucket, "a.jpg", 7),
            ks.reprocess_cursor("run"),
            ks.reprocess_lease("run"),
        ] {
            assert!(!key.is_immutable(), "{key:?}");
        }
    }
}
