//! The ONNX Runtime shared library that the `ort` crate loads (`load-dynamic`): where it
//! is on this machine, and where it is nowhere, the official release archive installed into
//! the model folder.
//!
//! - `locate`: the candidates, best first: `ORT_DYLIB_PATH` alone when set; else the model
//!   folder, an installed Python `onnxruntime` package, `LD_LIBRARY_PATH` and the system
//!   folders. Nothing is loaded there.
//! - [`load_first`]: loads the first candidate that ONNX Runtime accepts, saying why each
//!   one before it was not.
//! - `fetch`: the pinned release archive (SHA-256 checked before unpacking) into
//!   `<model_dir>/onnxruntime/lib/`, where `locate` finds it next time.
//! - `unpack`: the archive's library files, and nothing that could land outside.

mod fetch;
mod locate;
mod unpack;

pub use fetch::{OrtFetchError, OrtRelease, fetch_library};
pub use locate::{
    FoundIn, LocateError, Located, MIN_MINOR, MODEL_FOLDER_RUNTIME, OrtLibrary, PYTHON_TIMEOUT, Search, locate,
};
pub use unpack::UnpackError;

use super::error::ModelError;
use super::runtime;

/// Loads ONNX Runtime from the first library of `search` it accepts, and returns that
/// library. A set `ORT_DYLIB_PATH` is the only one tried; otherwise a library that fails
/// to load (too old for this build's API level, not ONNX Runtime, missing a dependency) is
/// passed over for the next. Blocks for as long as the search asks Python (bounded).
pub fn load_first(search: &Search) -> Result<OrtLibrary, ModelError> {
    let located = locate(search).map_err(|e| ModelError::RuntimeNotFound(e.to_string()))?;
    let mut passed_over = located.skipped;
    for candidate in located.candidates {
        match runtime::environment(Some(&candidate.path), "CLIP") {
            Ok(_) => {
                for why in &passed_over {
                    tracing::warn!("ONNX Runtime library passed over: {why}");
                }
                return Ok(candidate);
            }
            Err(e) if candidate.found_in == FoundIn::Setting => return Err(e),
            Err(e) => passed_over.push(e.to_string()),
        }
    }
    let searched = format!(
        "searched {}/{MODEL_FOLDER_RUNTIME}/lib, the Python onnxruntime package and the library path",
        search.model_dir.display()
    );
    Err(ModelError::RuntimeNotFound(if passed_over.is_empty() {
        searched
    } else {
        format!("{searched}; passed over: {}", passed_over.join("; "))
    }))
}
