//! The `ongi` subcommands other than `serve`, one module each.
//!
//! - [`analyze`]: every analysis on a folder, written as a JSON and an HTML report.
//! - [`bench`]: benchmarks (embedding, duplicates, faces, album, start-up, load, hostile photos).
//! - [`eval`]: the evaluations against the anchor (blur, duplicates, people).
//! - [`models`]: `models fetch` and `models verify`, and the first-run download of `serve`.
//! - [`reprocess`]: batch reprocessing from the command line.

pub mod analyze;
pub mod bench;
pub mod eval;
pub mod models;
pub mod reprocess;
