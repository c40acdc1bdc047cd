//! Where a listed photo stands before any work: skipped (and why) or due, from the listing
//! ([`image_like`], the `since` bound, the name) and then from the cache (its alias, its
//! recorded failure, each step's output for the deployed model).

use super::request::ReprocessRequest;
use crate::cache::{Cache, CacheKey};
use crate::domain::ImageRef;
use crate::image::is_photo_name;
use crate::pipeline::FeatureService;
use crate::storage::ObjectInfo;

/// Where a listed object stands before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Skip(&'static str),
    /// To process; `features`: the embedding step itself is due (its generation is new to
    /// the cache, or its record is gone), not only a per-photo step.
    Due {
        features: bool,
    },
}

impl Verdict {
    pub(super) fn is_due(self) -> bool {
        matches!(self, Verdict::Due { .. })
    }
}

/// Where each listed object stands, from two cache round trips for the whole page.
pub(super) async fn verdicts(
    cache: &Cache,
    req: &ReprocessRequest,
    model: &str,
    objects: &[ObjectInfo],
) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = objects.iter().map(|o| first_look(req, o)).collect();
    let candidates: Vec<usize> = (0..objects.len()).filter(|&i| verdicts[i].is_due()).collect();
    if candidates.is_empty() {
        return verdicts;
    }
    let ks = cache.keyspace();
    let bucket = &req.bucket;
    let keys: Vec<CacheKey> = candidates
        .iter()
        .flat_map(|&i| {
            let o = &objects[i];
            [
                ks.alias(bucket, &o.name, o.generation),
                ks.failure(model, bucket, &o.name, o.generation),
            ]
        })
        .collect();
    let values = cache.get_many(&keys).await;
    // (object, key, whether the key is the feature record)
    let mut needed: Vec<(usize, CacheKey, bool)> = Vec::new();
    for (n, &i) in candidates.iter().enumerate() {
        if values[2 * n + 1].is_some() {
            verdicts[i] = Verdict::Skip("failed_before");
            continue;
        }
        let Some(hash) = values[2 * n].as_deref().and_then(FeatureService::alias_hash) else {
            continue;
        };
        // Known content: current when every step's output is there too.
        verdicts[i] = Verdict::Skip("current");
        for step in &req.steps {
            let (key, is_features) = match step.per_photo() {
                None => (ks.features(model, &hash), true),
                Some(module) => (ks.result(module.name(), model, &hash), false),
            };
            needed.push((i, key, is_features));
        }
    }
    let keys: Vec<CacheKey> = needed.iter().map(|(_, k, _)| k.clone()).collect();
    let found = cache.get_many(&keys).await;
    for ((i, _, is_features), value) in needed.iter().zip(found) {
        if value.is_none() {
            let features = *is_features || verdicts[*i] == Verdict::Due { features: true };
            verdicts[*i] = Verdict::Due { features };
        }
    }
    verdicts
}

/// What the listing alone says: too old, not a photo, a name no reference can carry.
fn first_look(req: &ReprocessRequest, object: &ObjectInfo) -> Verdict {
    if req.since.is_some_and(|since| object.updated < since) {
        return Verdict::Skip("before_since");
    }
    if !image_like(object) {
        return Verdict::Skip("not_image");
    }
    if ImageRef::parse(&object.name).is_err() {
        return Verdict::Skip("invalid_name");
    }
    // Unknown content until its alias is read: everything is due.
    Verdict::Due { features: true }
}

/// A photo by its content type (`image/*`), or, where the type is absent or generic, by its
/// extension. The decoder has the last word: a "photo" it cannot read is a failure.
pub fn image_like(object: &ObjectInfo) -> bool {
    if object.name.ends_with('/') {
        // A folder placeholder.
        return false;
    }
    let content_type = object
        .content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("image/") {
        return true;
    }
    let generic = matches!(
        content_type.as_str(),
        "" | "application/octet-stream" | "binary/octet-stream"
    );
    generic && is_photo_name(&object.name)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn info(name: &str, content_type: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            name: name.into(),
            generation: 1,
            size: 1,
            updated: UNIX_EPOCH,
            content_type: content_type.map(str::to_owned),
        }
    }

    #[test]
    fn photos_are_told_by_type_then_by_extension() {
        assert!(image_like(&info("a/3f1c.webp", None)));
        assert!(image_like(&info("a/IMG_1.JPG", Some("application/octet-stream"))));
        assert!(image_like(&info("a/noext", Some("image/jpeg; charset=binary"))));
        assert!(!image_like(&info("a/notes.txt", None)));
        assert!(!image_like(&info("a/fake.jpg", Some("text/plain"))));
        assert!(!image_like(&info("a/", None)));
        assert!(!image_like(&info("a/noext", None)));
    }
}
