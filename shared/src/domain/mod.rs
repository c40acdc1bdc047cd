//! Validated values. Parse, don't validate: once a value of these types exists it is
//! known to be well formed, so the rest of the code never sees a raw reference string.

mod bucket;
mod content_hash;
mod image_ref;
mod reason;
pub(crate) mod time;

pub use bucket::BucketName;
pub use content_hash::ContentHash;
pub use image_ref::{ImageRef, MAX_REF_BYTES, RefError};
pub use reason::Reason;
