//! Events in and out.
//!
//! - [`storage`]: the upload notifications that start flow A, in the three shapes Google
//!   delivers them (Eventarc CloudEvent in binary or structured mode, or a Pub/Sub push of
//!   a GCS notification), parsed into one [`StorageEvent`](storage::StorageEvent).
//! - [`features`]: `ongi-features` messages arriving by Pub/Sub push, checked once.
//! - [`publish`]: publishing to `ongi-features` (and later `ongi-results`) on Pub/Sub.

pub mod features;
pub mod publish;
pub mod storage;
