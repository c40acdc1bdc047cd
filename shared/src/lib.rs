//! # ongi-shared: the core every Ongi binary uses
//!
//! Every Cloud Run function (`functions/*`), the `ongi` binary and the GPU worker are thin
//! `main`s over this crate. Dependencies point down this table and never back up; each row
//! names exactly the modules its module uses. `tests/layering.rs` reads this table (its one
//! copy) and fails on an import against it, in any path form, and on an edge no code uses:
//!
//! | layer | may use |
//! |---|---|
//! | [`http`] | `services`, `album`, `photo`, `reprocess`, `pipeline`, `analysis`, `model`, `storage`, `queue`, `events`, `style`, `functions`, `telemetry`, `config`, `domain` |
//! | [`services`] | `photo`, `reprocess`, `pipeline`, `analysis`, `model`, `storage`, `cache`, `queue`, `events`, `style`, `functions`, `config` |
//! | [`reprocess`] | `photo`, `pipeline`, `model`, `image`, `storage`, `cache`, `events`, `functions`, `domain` |
//! | [`photo`] | `pipeline`, `analysis`, `model`, `storage`, `cache`, `events`, `functions`, `config`, `domain` |
//! | [`album`] | `pipeline`, `analysis`, `domain` |
//! | [`pipeline`] | `analysis`, `model`, `image`, `storage`, `cache`, `config`, `domain` |
//! | [`style`] | `image`, `config` |
//! | [`analysis`] | `image`, `config`, `domain` (no I/O) |
//! | [`model`] | `image`, `config` |
//! | [`image`], [`storage`], [`events`] | `config`, `domain` |
//! | [`cache`] | `domain` |
//! | [`telemetry`] | `config` |
//! | [`config`] | `domain` |
//! | [`domain`], [`functions`], [`queue`] | nothing |
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`config`] | the typed [`Settings`](config::Settings) read from the environment; one-line errors; the table of every setting ([`SETTINGS`](config::SETTINGS)) | read the environment anywhere else; depend on any module but [`domain`] |
//! | [`telemetry`] | the tracing subscriber (JSON for Cloud Logging, text locally) and the Prometheus recorder | — |
//! | [`domain`] | validated values: [`ImageRef`](domain::ImageRef), [`BucketName`](domain::BucketName), [`ContentHash`](domain::ContentHash) | do I/O |
//! | [`image`] | decoding untrusted bytes: format sniffing, header limits, reduced-scale JPEG, EXIF orientation and capture time; OpenCV-compatible pixel features (pHash, blur, exposure) | panic on any input |
//! | [`storage`] | the [`ObjectStore`](storage::ObjectStore) trait; Cloud Storage and a local folder | let a reference leave its bucket |
//! | [`cache`] | the [`FeatureCache`](cache::FeatureCache) trait; Redis and in-process; versioned keys; LE vectors | turn a cache outage into a failed request |
//! | [`http`] | the axum application: routes that map requests to [`album`], [`photo`], [`reprocess`] and [`pipeline`] calls, envelope, errors, limits, request ids, health, metrics, OpenAPI, shutdown | hold analysis logic |
//! | [`services`] | the process's clients and services built from the settings (store, cache, models, feature/face/text services, publishers, style queue) | serve HTTP |
//! | [`album`] | one album's analyses over its photos' features, as the routes answer them and `ongi analyze` reports them | read photos itself |
//! | [`model`] | ONNX Runtime, the CLIP encoders, face detection/alignment/embedding, the model folder's [`manifest`](model::manifest) (pinned SHA-256, licences, `fetch`/`verify`) | panic or download on a missing model |
//! | [`photo`] | the per-photo flow every uploaded photo takes, in one order: features, the `ongi-features` announcement, each function's per-photo result, published then stored; which uploads count | hold analysis rules; be bypassed by an entry point |
//! | [`reprocess`] | batch reprocessing: a bucket walk with a cursor and a lease, each due photo through [`photo`] | compute a result itself |
//! | [`pipeline`] | per-photo features and faces, cache-or-compute: one download and one decode, batched inference, the embedding service on Cloud Run; decode memory, threads and fair turns | hold analysis rules |
//! | [`analysis`] | the analyses as pure functions over [`FeatureRecord`](analysis::FeatureRecord)s and text vectors: categories, duplicates, quality, highlights, people clustering; the taxonomy | do I/O |
//! | [`events`] | upload notifications in (CloudEvents, Pub/Sub push) and Pub/Sub publishing out | — |
//! | [`queue`] | the style job queue on Redis: stream + consumer group, a hash per job, idempotency keys, reclaim, dead letters | run a job |
//! | [`style`] | style presets and their templates, the Gemini prompt writer, the thumbnail Gemini sees | call the diffusion model |
//! | [`functions`] | the Cloud Run functions (`embedding`, `category`, …, `style`) and which of them a process serves; `ongi.results.v1` calls each a `module` | — |

//!
//! *The anchor*, in comments here, is the Python service Ongi replaces: its algorithms and
//! constants are the baseline each analysis is measured against, and each departure from it
//! is named where it is made.

// No `unsafe` in Ongi's own code: untrusted bytes meet only safe Rust here.
#![forbid(unsafe_code)]

pub mod album;
pub mod analysis;
pub mod cache;
pub mod config;
pub mod domain;
pub mod events;
pub mod functions;
pub mod http;
pub mod image;
pub mod model;
pub mod photo;
pub mod pipeline;
pub mod queue;
pub mod reprocess;
pub mod services;
pub mod storage;
pub mod style;
pub mod telemetry;
