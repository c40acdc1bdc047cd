//! The models a process has, loaded once at start-up. Loading never fails the process:
//! what is missing is recorded (and said in one line at start), and the analyses that need
//! no model (pixel features: duplicates, blur, exposure) still run.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::clip::{ClipTextual, ClipVisual, TEXTUAL_FILE, VISUAL_FILE};
use super::error::ModelError;
use super::runtime;
use crate::analysis::score::{AESTHETIC_FILE, AestheticHead};

/// Model id of feature records computed without a CLIP model (pixel features only).
pub const PIXELS_ONLY: &str = "pixels-only";

pub struct Models {
    pub clip_visual: Option<Arc<ClipVisual>>,
    pub clip_textual: Option<Arc<ClipTextual>>,
    /// The LAION aesthetic linear head (pure Rust, no ONNX Runtime needed).
    pub aesthetic: Option<AestheticHead>,
    /// `clip-vit-b32@<sha256 prefix of the visual file>`, or [`PIXELS_ONLY`]. Part of every
    /// cache key, so a new model never reads another model's vectors.
    pub clip_model_id: String,
    /// One line per model that could not be loaded.
    pub missing: Vec<String>,
}

impl Models {
    /// No models at all: pixel features only.
    pub fn none(reason: impl Into<String>) -> Self {
        Self {
            clip_visual: None,
            clip_textual: None,
            aesthetic: None,
            clip_model_id: PIXELS_ONLY.to_owned(),
            missing: vec![reason.into()],
        }
    }

    /// Loads the CLIP encoders from `dir` with ONNX Runtime from `ort_library`.
    pub fn load(dir: &Path, ort_library: Option<&Path>) -> Self {
        let aesthetic = AestheticHead::load(&dir.join(AESTHETIC_FILE));
        let env = match runtime::environment(ort_library, "CLIP") {
            Ok(env) => env,
            Err(e) => {
                let mut models = Self::none(e.to_string());
                match aesthetic {
                    Ok(head) => models.aesthetic = Some(head),
                    Err(e) => models.missing.push(e.to_string()),
                }
                return models;
            }
        };
        let threads = runtime::intra_op_threads();
        let mut missing = Vec::new();
        let visual_path = dir.join(VISUAL_FILE);
        let (clip_visual, clip_model_id) = match ClipVisual::load(env, &visual_path, threads)
            .and_then(|m| Ok((m, model_id("clip-vit-b32", &visual_path)?)))
        {
            Ok((m, id)) => (Some(Arc::new(m)), id),
            Err(e) => {
                missing.push(e.to_string());
                (None, PIXELS_ONLY.to_owned())
            }
        };
        let clip_textual = match ClipTextual::load(env, &dir.join(TEXTUAL_FILE), threads) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                missing.push(e.to_string());
                None
            }
        };
        let aesthetic = match aesthetic {
            Ok(head) => Some(head),
            Err(e) => {
                missing.push(e.to_string());
                None
            }
        };
        Self {
            clip_visual,
            clip_textual,
            aesthetic,
            clip_model_id,
            missing,
        }
    }
}

/// `name@<first 12 hex digits of the file's SHA-256>`: changes whenever the weights do.
fn model_id(name: &str, path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::Load {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| ModelError::Load {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(format!("{name}@{}", &hex::encode(hasher.finalize())[..12]))
}
