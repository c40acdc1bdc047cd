//! # ongi-shared: the core every Ongi binary uses
//!
//! Every Cloud Run function (`functions/*`), the `ongi` binary and the GPU worker are thin
//! `main`s over this crate. Dependencies point down this table and never back up; each row
//! names what its module may use, and `tests/layering.rs` fails on any import against it:
//!
//! | layer | may use |
//! |---|---|
//! | [`http`] | every module below |
//! | [`services`] | `pipeline`, `analysis`, `model`, `storage`, `cache`, `queue`, `events`, `style`, `modules`, `config`, `domain` |
//! | [`album`] | `pipeline`, `analysis`, `model`, `config`, `domain` |
//! | [`pipeline`] | `analysis`, `model`, `image`, `storage`, `cache`, `events`, `modules`, `config`, `domain` |
//! | [`style`] | `image`, `queue`, `config`, `domain` |
//! | [`analysis`] | `model`, `image`, `config`, `domain` (no I/O) |
//! | [`model`] | `image`, `config`, `domain` |
//! | [`image`], [`storage`], [`cache`], [`queue`], [`events`] | `config`, `domain` |
//! | [`telemetry`] | `config` |
//! | [`config`] | `domain` |
//! | [`domain`], [`modules`] | nothing |
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`config`] | the typed [`Settings`](config::Settings) read from the environment; one-line errors; the table of every setting ([`SETTINGS`](config::SETTINGS)) | read the environment anywhere else; depend on any module but [`domain`] |
//! | [`telemetry`] | the tracing subscriber (JSON for Cloud Logging, text locally) and the Prometheus recorder | — |
//! | [`domain`] | validated values: [`ImageRef`](domain::ImageRef), [`BucketName`](domain::BucketName), [`ContentHash`](domain::ContentHash) | do I/O |
//! | [`image`] | decoding untrusted bytes: format sniffing, header limits, reduced-scale JPEG, EXIF orientation and capture time; OpenCV-compatible pixel features (pHash, blur, exposure) | panic on any input |
//! | [`storage`] | the [`ObjectStore`](storage::ObjectStore) trait; Cloud Storage and a local folder | let a reference leave its bucket |
//! | [`cache`] | the [`FeatureCache`](cache::FeatureCache) trait; Redis and in-process; versioned keys; LE vectors | turn a cache outage into a failed request |
//! | [`http`] | the axum application: routes that map requests to [`album`] and [`pipeline`] calls, envelope, errors, limits, request ids, health, metrics, OpenAPI, shutdown | hold analysis logic |
//! | [`services`] | the process's clients and services built from the settings (store, cache, models, feature/face/text services, publishers, style queue) | serve HTTP |
//! | [`album`] | one album's analyses over its photos' features, as the routes answer them and `ongi analyze` reports them | read photos itself |
//! | [`model`] | ONNX Runtime, the CLIP encoders, face detection/alignment/embedding, the model folder's [`manifest`](model::manifest) (pinned SHA-256, licences, `fetch`/`verify`) | panic or download on a missing model |
//! | [`pipeline`] | per-photo features and faces, cache-or-compute: one download and one decode, batched inference, the embedding service on Cloud Run; the per-photo steps; batch reprocessing (a bucket walk with a cursor, announcing through the [`events`] publishers) | hold analysis rules |
//! | [`analysis`] | the analyses as pure functions over [`FeatureRecord`](analysis::FeatureRecord)s and text vectors: categories, duplicates, quality, highlights, people clustering; the taxonomy | do I/O |
//! | [`events`] | upload notifications in (CloudEvents, Pub/Sub push) and Pub/Sub publishing out | — |
//! | [`queue`] | the style job queue on Redis: stream + consumer group, a hash per job, idempotency keys, reclaim, dead letters | run a job |
//! | [`style`] | style presets and their templates, the Gemini prompt writer, the thumbnail Gemini sees | call the diffusion model |
//! | [`modules`] | which analysis modules a process serves | — |

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
pub mod http;
pub mod image;
pub mod model;
pub mod modules;
pub mod pipeline;
pub mod queue;
pub mod services;
pub mod storage;
pub mod style;
pub mod telemetry;
