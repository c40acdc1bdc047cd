//! Integration tests of the shared core, in one binary (one link step for all of them).
//!
//! They talk to real servers: Redis at `REDIS_URL` and fake-gcs-server at
//! `STORAGE_EMULATOR_HOST`, both started by `.ci/run`. A missing server fails the test with
//! one line saying so; nothing here is mocked.

mod analyses_api;
mod capture_time;
mod clip_parity;
mod decode_corpus;
mod e2e_album;
mod e2e_upload;
mod embedding_api;
mod face_align;
mod face_detect;
mod face_detect_yunet;
mod face_embed;
mod faults;
mod gcs_store;
#[cfg(feature = "heif")]
mod heif_decode;
mod hostile;
mod http_api;
mod local_store;
mod people_api;
mod pixel_features;
mod redis_cache;
mod reprocess;
mod reprocess_listing;
mod search_api;
mod style_queue;
mod support;
