//! Models: the ONNX Runtime environment, the CLIP encoders and their preprocessing, and the
//! model folder's manifest.
//!
//! - [`runtime`]: loads ONNX Runtime once per process; builds sessions.
//! - [`ort_library`]: finds the ONNX Runtime library (`ORT_DYLIB_PATH`, the model folder, a
//!   Python `onnxruntime` package, the library path) and fetches the pinned release archive.
//! - [`clip`]: the image and text encoders and the standard CLIP preprocessing.
//! - [`aesthetic`]: the LAION aesthetic linear head on CLIP image embeddings.
//! - [`error`]: [`ModelError`], one line per failure.
//! - [`manifest`]: the model folder's `manifest.toml` (files, pinned SHA-256, licences, I/O
//!   contracts), `verify` and `fetch_with` behind `ongi models verify | fetch`.

pub(crate) mod aesthetic;
pub mod clip;
pub(crate) mod error;
pub mod face;
pub mod face_embed;
pub mod loaded;
pub mod manifest;
pub mod ort_library;
pub mod runtime;

pub use error::ModelError;
pub use loaded::Models;
