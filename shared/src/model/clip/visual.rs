//! The CLIP image encoder: `pixel_values` f32 [N,3,224,224] → `image_embeds` f32 [N,512].

use std::path::Path;

use super::encoder::Encoder;
use super::preprocess::CLIP_SIZE;
use crate::model::error::ModelError;
use crate::model::runtime::SessionConfig;

pub struct ClipVisual {
    encoder: Encoder,
}

impl ClipVisual {
    /// Loads the model with `config` (or a thread count) and checks its I/O contract.
    pub fn load(
        env: &ort::environment::Environment,
        path: &Path,
        config: impl Into<SessionConfig>,
    ) -> Result<Self, ModelError> {
        let encoder = Encoder::load(env, path, config.into(), "pixel_values", "image_embeds")?;
        Ok(Self { encoder })
    }

    /// Runs the encoder on `n` preprocessed images laid out back to back in `pixels`.
    /// The embeddings are the raw projections (not normalised).
    pub fn embed(&self, pixels: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let side = i64::from(CLIP_SIZE);
        self.encoder.run(vec![n as i64, 3, side, side], pixels, n)
    }
}
