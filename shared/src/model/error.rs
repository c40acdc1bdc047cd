//! Model errors: every way loading or running a model can fail, as one-line messages.

use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("no ONNX Runtime library is loaded: it is needed for {0}")]
    RuntimeNotConfigured(&'static str),
    #[error(
        "no ONNX Runtime library found ({0}; `ongi models fetch`, `pip install onnxruntime==1.32.0` or ORT_DYLIB_PATH=…/libonnxruntime.so.1.32.0 adds one)"
    )]
    RuntimeNotFound(String),
    #[error("cannot load the ONNX Runtime library {path}: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("model file {0} is missing (run `ongi models fetch`, or set ONGI_MODEL_DIR)")]
    Missing(PathBuf),
    #[error("cannot load model {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("model {model} does not have the expected I/O contract: {reason}")]
    Contract { model: String, reason: String },
    #[error("inference failed in {model}: {reason}")]
    Inference { model: String, reason: String },
}
