//! Models: the ONNX Runtime environment, the CLIP encoders and their preprocessing, and the
//! model folder's manifest.
//!
//! - [`runtime`]: loads ONNX Runtime from `ORT_DYLIB_PATH` once per process; builds sessions.
//! - [`clip`]: the image and text encoders and the standard CLIP preprocessing.
//! - [`aesthetic`]: the LAION aesthetic linear head on CLIP image embeddings.
//! - [`error`]: [`ModelError`], one line per failure.
//! - [`manifest`]: the model folder's `manifest.toml` (files, pinned SHA-256, licences, I/O
//!   contracts), `verify` and `fetch_with` behind `ongi models verify | fetch`.

pub mod aesthetic;
pub mod clip;
pub mod error;
pub mod face;
pub mod face_embed;
pub mod loaded;
pub mod manifest;
pub mod runtime;

pub use error::ModelError;
pub use loaded::Models;
