//! Per-photo features, computed once and shared through the cache.
//!
//! - [`analyzer`]: text embeddings (memory, cache or computed) and the thresholds the album
//!   analyses take.
//! - [`photo`]: one decode → every pixel feature and the CLIP input.
//! - [`batcher`]: cross-request batching of CLIP inference on a model thread.
//! - [`service`]: cache-or-compute for an album or one uploaded object.
//! - [`single_flight`]: concurrent calls that need the same photo compute it once.
//! - [`decode_budget`]: the process's decode memory, deadline and threads; with
//!   [`decode_lanes`] and [`fair_slots`], calls take turns for decodes and compute slots;
//!   [`hashing`]: content hashes of large files off the async runtime.
//! - [`steps`]: the per-photo steps (category, quality, score) over cached features.
//! - [`reprocess`]: batch reprocessing, a bucket walk that resumes from a cursor (flow D).

pub mod analyzer;
pub mod batcher;
pub mod decode_budget;
pub mod decode_lanes;
mod decode_threads;
pub mod face_record;
pub mod faces;
pub mod fair_slots;
pub mod hashing;
pub mod photo;
pub mod remote;
pub mod reprocess;
pub mod service;
pub mod single_flight;
pub mod steps;

pub use service::{FeatureService, Features, PhotoError};
