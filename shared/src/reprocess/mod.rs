//! Batch reprocessing (docs/reprocess.md): walk a bucket page by page, skip the photos whose
//! results are current for the deployed model, and process the rest with bounded
//! concurrency. `POST /batch/reprocess` and `ongi reprocess` are thin shells over [`Reprocessor`].
//!
//! - **Current**: a photo generation is current for a step when its exact alias
//!   (`bucket/object#generation` → content hash) is cached and so is the step's output for the
//!   deployed model id: the feature record for `embedding`, `Keyspace::result(module, model,
//!   hash)` for `category`, `quality` and `score`. A photo that could not be read (corrupt,
//!   unsupported, too large) is recorded under `Keyspace::failure` and not retried for the same
//!   generation and model.
//! - **Processing** is the per-photo flow ([`PhotoFlow::run`](crate::photo::PhotoFlow::run)):
//!   features (one download, one decode; a cache hit when only a per-photo result is
//!   missing); when the embedding step ran, `ongi-features` is told, as on an upload (flow A),
//!   so on Cloud Run the embedding function's walk fans out to the other functions' per-photo
//!   results; then each missing result of this process is published on `ongi-results` and
//!   then stored. Either publish failing leaves the photo due for the next call.
//! - **The cursor** is the last object name up to which everything is handled, kept in the
//!   cache's backend (Redis, or in-process) under a key naming the run: bucket, prefix, since,
//!   steps and the model id (a new model starts a new walk). Pages are listed after it, so a
//!   call cut off by its time budget or page limit resumes exactly there; a complete walk
//!   deletes it. A lease (`SET NX`, released compare-and-delete) keeps two overlapping calls
//!   from walking the same run.
//! - **Stopping**: after the time budget no new photo is started and the ones in flight finish;
//!   every call starts at least one photo (or finishes one page), so a tiny budget still moves
//!   the walk forward. A transient failure (storage, models, Pub/Sub) stops the call the same
//!   way, with the cursor before the photo that failed, and is reported as an error.
//!
//! The request and its run id are in `request`, the skip reasons in `verdict`, the paged walk
//! (lease, cursor, budget) in `walk`, the processing of due photos in `process`, and the
//! answer in `report`.

mod process;
mod report;
mod request;
mod verdict;
mod walk;

pub use report::{Outcome, Progress, ProgressEvent, ReprocessError, ReprocessFailure, ReprocessReport};
pub use request::{MAX_BUDGET, RawRequest, ReprocessRequest, RequestError, Step, resolve_steps, validate_prefix};
pub use verdict::image_like;
pub use walk::Reprocessor;
