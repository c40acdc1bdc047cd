//! The CLIP text encoder: `input_ids` i64 [N,77] → `text_embeds` f32 [N,512], with
//! OpenAI's BPE tokenizer (`instant-clip-tokenizer`, vocabulary bundled in the crate).

use std::path::Path;
use std::sync::Mutex;

use instant_clip_tokenizer::{Token, Tokenizer};
use ort::session::Session;
use ort::value::Tensor;

use super::EMBED_DIM;
use crate::model::error::ModelError;
use crate::model::runtime::load_session;

pub const CONTEXT_LENGTH: usize = 77;
const INPUT: &str = "input_ids";
const OUTPUT: &str = "text_embeds";

pub struct ClipTextual {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    name: String,
}

impl ClipTextual {
    pub fn load(env: &ort::environment::Environment, path: &Path, threads: usize) -> Result<Self, ModelError> {
        let session = load_session(env, path, threads)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let ok =
            session.inputs().iter().any(|i| i.name() == INPUT) && session.outputs().iter().any(|o| o.name() == OUTPUT);
        if !ok {
            return Err(ModelError::Contract {
                model: name,
                reason: format!("expected input {INPUT:?} and output {OUTPUT:?}"),
            });
        }
        Ok(Self {
            session: Mutex::new(session),
            tokenizer: Tokenizer::new(),
            name,
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
        let fail = |reason: String| ModelError::Inference {
            model: self.name.clone(),
            reason,
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        if ids.len() != n * CONTEXT_LENGTH {
            return Err(fail(format!("{} ids for {n} texts", ids.len())));
        }
        let input = Tensor::from_array(([n as i64, CONTEXT_LENGTH as i64], ids)).map_err(|e| fail(e.to_string()))?;
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
