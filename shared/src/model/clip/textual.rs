//! The CLIP text encoder: `input_ids` i64 [N,77] → `text_embeds` f32 [N,512], with
//! OpenAI's BPE tokenizer (`instant-clip-tokenizer`, vocabulary bundled in the crate).

use std::path::Path;

use instant_clip_tokenizer::{Token, Tokenizer};

use super::encoder::Encoder;
use crate::model::error::ModelError;
use crate::model::runtime::SessionConfig;

pub const CONTEXT_LENGTH: usize = 77;

pub struct ClipTextual {
    encoder: Encoder,
    tokenizer: Tokenizer,
}

impl ClipTextual {
    /// Loads the model with `config` (or a thread count) and checks its I/O contract.
    pub fn load(
        env: &ort::environment::Environment,
        path: &Path,
        config: impl Into<SessionConfig>,
    ) -> Result<Self, ModelError> {
        let encoder = Encoder::load(env, path, config.into(), "input_ids", "text_embeds")?;
        Ok(Self {
            encoder,
            tokenizer: Tokenizer::new(),
        })
    }

    /// `<start_of_text> tokens… <end_of_text>` padded with 0 to 77, as OpenAI's `clip.tokenize`
    /// (texts longer than 75 tokens are cut, keeping the end-of-text token).
    pub fn tokenize(&self, text: &str) -> [i64; CONTEXT_LENGTH] {
        let mut tokens: Vec<Token> = Vec::new();
        self.tokenizer.encode(text, &mut tokens);
        tokens.truncate(CONTEXT_LENGTH - 2);
        let mut ids = [0i64; CONTEXT_LENGTH];
        ids[0] = i64::from(self.tokenizer.start_of_text().to_u16());
        for (slot, t) in ids[1..].iter_mut().zip(&tokens) {
            *slot = i64::from(t.to_u16());
        }
        ids[tokens.len() + 1] = i64::from(self.tokenizer.end_of_text().to_u16());
        ids
    }

    /// Raw (not normalised) text embeddings, one per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let ids: Vec<i64> = texts.iter().flat_map(|t| self.tokenize(t)).collect();
        self.embed_ids(ids, texts.len())
    }

    /// Runs the encoder on `n` token sequences of 77 ids laid out back to back.
    pub fn embed_ids(&self, ids: Vec<i64>, n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        self.encoder.run(vec![n as i64, CONTEXT_LENGTH as i64], ids, n)
    }
}
