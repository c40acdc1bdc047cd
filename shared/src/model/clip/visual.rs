//! The CLIP image encoder: `pixel_values` f32 [N,3,224,224] → `image_embeds` f32 [N,512].

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use super::EMBED_DIM;
use super::preprocess::{CLIP_SIZE, PIXELS_PER_IMAGE};
use crate::model::error::ModelError;
use crate::model::runtime::load_session;

const INPUT: &str = "pixel_values";
const OUTPUT: &str = "image_embeds";

pub struct ClipVisual {
    /// ONNX Runtime sessions run with `&mut`; one batch runs at a time and uses every
    /// intra-op thread, so a mutex costs nothing that parallel sessions would gain.
    session: Mutex<Session>,
    name: String,
}

impl ClipVisual {
    pub fn load(env: &ort::environment::Environment, path: &Path, threads: usize) -> Result<Self, ModelError> {
        let session = load_session(env, path, threads)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        check_contract(&session, &name)?;
        Ok(Self {
            session: Mutex::new(session),
            name,
        })
    }

    /// Runs the encoder on `n` preprocessed images laid out back to back in `pixels`.
    /// The embeddings are the raw projections (not normalised).
    pub fn embed(&self, pixels: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let fail = |reason: String| ModelError::Inference {
            model: self.name.clone(),
            reason,
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        if pixels.len() != n * PIXELS_PER_IMAGE {
            return Err(fail(format!("{} floats for {n} images", pixels.len())));
        }
        let side = i64::from(CLIP_SIZE);
        let input = Tensor::from_array(([n as i64, 3, side, side], pixels)).map_err(|e| fail(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![INPUT => input])
            .map_err(|e| fail(e.to_string()))?;
        let (shape, data) = outputs[OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail(e.to_string()))?;
        if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != EMBED_DIM {
            return Err(fail(format!("output shape {shape:?}, expected [{n}, {EMBED_DIM}]")));
        }
        Ok(data.chunks_exact(EMBED_DIM).map(<[f32]>::to_vec).collect())
    }
}

fn check_contract(session: &Session, name: &str) -> Result<(), ModelError> {
    let has_in = session.inputs().iter().any(|i| i.name() == INPUT);
    let has_out = session.outputs().iter().any(|o| o.name() == OUTPUT);
    if has_in && has_out {
        Ok(())
    } else {
        Err(ModelError::Contract {
            model: name.to_owned(),
            reason: format!("expected input {INPUT:?} and output {OUTPUT:?}"),
        })
    }
}
