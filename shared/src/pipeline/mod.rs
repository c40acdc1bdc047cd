//! Per-photo features, computed once and shared through the cache.
//!
//! - [`analysis_models`]: text embeddings (memory, cache or computed) and the thresholds the album
//!   analyses take.
//! - [`pixels`]: one decode → every pixel feature and the CLIP input.
//! - [`photo_error`]: why one photo has no features.
//! - [`batcher`]: cross-request batching of CLIP inference on a model thread.
//! - [`features`]: cache-or-compute for an album or one object generation.
//! - [`single_flight`]: concurrent calls that need the same photo compute it once.
//! - [`decode_budget`]: the process's decode memory, deadline and threads; with
//!   [`decode_lanes`] and [`fair_slots`], calls take turns for decodes and compute slots;
//!   [`hashing`]: content hashes of large files off the async runtime.
//! - [`faces`], [`face_record`]: faces detected once per photo and cached, for the people
//!   function.
//! - [`remote`]: the embedding service, where a process has no image encoder (Cloud Run).

pub mod analysis_models;
pub mod batcher;
pub(crate) mod decode_budget;
pub(crate) mod decode_lanes;
mod decode_threads;
pub mod face_record;
pub(crate) mod faces;
pub(crate) mod fair_slots;
pub(crate) mod features;
pub(crate) mod hashing;
pub mod photo_error;
pub mod pixels;
pub(crate) mod remote;
pub(crate) mod single_flight;

pub use features::{FeatureService, Features};
pub use photo_error::PhotoError;
