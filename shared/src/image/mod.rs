//! Image ingest: turning untrusted bytes into RGB pixels, or into a typed error with a
//! stable reason (`empty`, `corrupt`, `unsupported_format`, `too_large`, `decode_timeout`).
//!
//! The order matters for safety and speed: the size in bytes is checked first, then the
//! format is sniffed from the magic bytes (never from the name), then the header is read and
//! the pixel count checked, and only then are pixels decoded. JPEG, which is what phones
//! upload, is decoded at a reduced DCT scale (1/2, 1/4, 1/8) when the caller needs only a
//! small image: a 12 MP photo needed at 224 px costs a 1/8-scale decode. HEIC and AVIF (the
//! cargo feature `heif`, through libheif) are decoded at full size: their codecs have no
//! such shortcut.

mod deadline;
mod decode;
mod error;
pub(crate) mod exif;
pub mod features;
mod format;
#[cfg(feature = "heif")]
mod heif;
mod jpeg;
mod metadata;
mod names;

pub use deadline::{Fired, Stop};
pub use decode::{DecodeCost, DecodeOptions, DecodedImage, decode, decode_until, estimate};
pub use error::ImageError;
pub use format::{DECODERS, ImageFormat, sniff};
pub use names::{PHOTO_EXTENSIONS, is_photo_name};
