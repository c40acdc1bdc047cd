//! What both CLIP encoders share: one ONNX session with a named input and a named
//! `[N, 512]` output, its I/O contract checked at load, run behind a mutex.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{PrimitiveTensorElementType, Tensor};

use super::EMBED_DIM;
use crate::model::error::ModelError;
use crate::model::runtime::{CheckedSession, SessionConfig, load_checked};

pub(crate) struct Encoder {
    /// ONNX Runtime sessions run with `&mut`; one batch runs at a time and uses every
    /// intra-op thread, so a mutex costs nothing that parallel sessions would gain.
    session: Mutex<Session>,
    name: String,
    input: &'static str,
    output: &'static str,
}

impl Encoder {
    pub(crate) fn load(
        env: &ort::environment::Environment,
        path: &Path,
        config: SessionConfig,
        input: &'static str,
        output: &'static str,
    ) -> Result<Self, ModelError> {
        let CheckedSession { session, name } = load_checked(env, path, config, input, &[output])?;
        Ok(Self {
            session: Mutex::new(session),
            name,
            input,
            output,
        })
    }

    pub(crate) fn fail(&self, reason: String) -> ModelError {
        ModelError::Inference {
            model: self.name.clone(),
            reason,
        }
    }

    /// Runs `n` inputs of `shape[1..]` laid out back to back; returns `n` embeddings.
    pub(crate) fn run<T: PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
        &self,
        shape: Vec<i64>,
        data: Vec<T>,
        n: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let per_item: i64 = shape[1..].iter().product();
        if data.len() as i64 != per_item * n as i64 {
            return Err(self.fail(format!("{} values for {n} inputs", data.len())));
        }
        let tensor = Tensor::from_array((shape, data)).map_err(|e| self.fail(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.input => tensor])
            .map_err(|e| self.fail(e.to_string()))?;
        let (shape, values) = outputs[self.output]
            .try_extract_tensor::<f32>()
            .map_err(|e| self.fail(e.to_string()))?;
        if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != EMBED_DIM {
            return Err(self.fail(format!("output shape {shape:?}, expected [{n}, {EMBED_DIM}]")));
        }
        Ok(values.chunks_exact(EMBED_DIM).map(<[f32]>::to_vec).collect())
    }
}
