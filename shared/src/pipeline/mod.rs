//! Per-photo features, computed once and shared through the cache.
//!
//! - [`record`]: the binary feature record (embedding, pHash, blur, exposure).
//! - [`photo`]: one decode → every pixel feature and the CLIP input.
//! - [`batcher`]: cross-request batching of CLIP inference on a model thread.
//! - [`service`]: cache-or-compute for an album or one uploaded object.

pub mod batcher;
pub mod face_record;
pub mod faces;
pub mod photo;
pub mod record;
pub mod remote;
pub mod service;

pub use record::FeatureRecord;
pub use service::{FeatureService, Features, PhotoError};
