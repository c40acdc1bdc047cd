//! The one error type of the diffusion module. Every failure that can come from a file, a
//! device or a caller's input ends up here instead of in a panic, because the worker must
//! report a failed style job and carry on with the next one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// One of the model files is not there. In production the `sd15/` folder of the model
    /// folder holds them (`ongi models fetch --for gpu-job` installs the pinned files); test
    /// models are written by `write_random_model`.
    #[error(
        "Stable Diffusion weight file {} is missing: run `ongi models fetch --for gpu-job` (the pinned SD 1.5 files, 2.1 GB, into sd15/ of the model folder; docs/style.md \"Running the worker\"), or write a tiny test model with `gpu-job tiny-model`",
        path.display()
    )]
    MissingWeights { path: PathBuf },
    /// A model file (or architecture.json) exists but cannot be used: unreadable, not
    /// safetensors, a tensor missing or of the wrong shape, an inconsistent architecture.
    #[error("the Stable Diffusion model cannot be used: {0}")]
    BadWeights(String),
    /// The requested device cannot be used (CUDA not compiled in, no GPU answering).
    #[error("the compute device cannot be used: {0}")]
    Device(String),
    /// The caller's parameters or image are out of range.
    #[error("invalid img2img request: {0}")]
    BadInput(String),
    /// `on_step` asked to stop.
    #[error("img2img was cancelled")]
    Cancelled,
    /// The model ran but produced NaN or infinite values (typically an f16 overflow or
    /// broken weights); reported instead of returning a black or saturated image.
    #[error("the model produced non-finite values ({0}); the weights or the f16 arithmetic are at fault")]
    NonFinite(String),
    /// Any other tensor failure during inference.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
