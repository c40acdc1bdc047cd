//! Per-photo features, computed once and shared through the cache.
//!
//! - [`record`]: the binary feature record (embedding, pHash, blur, exposure).
//! - [`photo`]: one decode → every pixel feature and the CLIP input.
//! - [`batcher`]: cross-request batching of CLIP inference on a model thread.
//! - [`service`]: cache-or-compute for an album or one uploaded object.
//! - [`steps`]: the per-photo steps (category, quality, score) over cached features.
//! - [`reprocess`]: batch reprocessing, a bucket walk that resumes from a cursor (flow D).

pub mod batcher;
pub mod decode_budget;
pub mod face_record;
pub mod faces;
pub mod photo;
pub mod record;
pub mod remote;
pub mod reprocess;
pub mod service;
pub mod steps;

pub use record::FeatureRecord;
pub use service::{FeatureService, Features, PhotoError};
