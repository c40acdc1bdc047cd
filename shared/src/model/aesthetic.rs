//! The LAION aesthetic predictor's linear head for ViT-B/32: 512 weights and a bias applied to
//! the L2-normalised CLIP image embedding, as the anchor did.

use std::path::Path;

use safetensors::SafeTensors;

use super::ModelError;
use super::clip::EMBED_DIM;

pub const AESTHETIC_FILE: &str = "aesthetic-vit-b32-linear.safetensors";

#[derive(Debug, Clone)]
pub struct AestheticHead {
    weight: Vec<f32>,
    bias: f32,
}

impl AestheticHead {
    /// Reads `weight` f32 [1,512] and `bias` f32 [1] from a safetensors file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|_| ModelError::Missing(path.to_owned()))?;
        let contract = |reason: String| ModelError::Contract {
            model: AESTHETIC_FILE.to_owned(),
            reason,
        };
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| contract(e.to_string()))?;
        let read = |name: &str, len: usize| -> Result<Vec<f32>, ModelError> {
            let t = tensors.tensor(name).map_err(|e| contract(format!("{name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape().iter().product::<usize>() != len {
                return Err(contract(format!(
                    "{name} is {:?} {:?}, expected F32 with {len} values",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let weight = read("weight", EMBED_DIM)?;
        let bias = read("bias", 1)?[0];
        Ok(Self { weight, bias })
    }

    /// The score of a normalised embedding.
    pub fn score(&self, embedding: &[f32]) -> f32 {
        self.weight.iter().zip(embedding).map(|(w, e)| w * e).sum::<f32>() + self.bias
    }
}
