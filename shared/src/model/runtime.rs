//! The ONNX Runtime environment: loaded once per process from the library that
//! [`super::ort_library`] found (the `load-dynamic` feature: nothing is downloaded at build
//! time), and sessions built on it with intra-op threads sized to the CPUs this process may use.
//!
//! `ort` reads `ORT_DYLIB_PATH` by itself on first use and panics if the library is
//! missing; calling `ort::init_from` here first turns that into a [`ModelError`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use super::error::ModelError;

static ENVIRONMENT: OnceLock<(PathBuf, Environment)> = OnceLock::new();
/// Held while a library is being loaded, so two threads never load two.
static LOADING: Mutex<()> = Mutex::new(());

/// The process's ONNX Runtime, loading the library on first call. Only one library can be
/// loaded per process: later calls with another path get the first one. A library that
/// fails to load is not remembered, so the caller may try another
/// ([`super::ort_library::load_first`]).
pub fn environment(library: Option<&Path>, needed_for: &'static str) -> Result<&'static Environment, ModelError> {
    if let Some((_, env)) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let Some(path) = library else {
        return Err(ModelError::RuntimeNotConfigured(needed_for));
    };
    let _loading = LOADING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, env)) = ENVIRONMENT.get() {
        return Ok(env);
    }
    if !path.is_file() {
        return Err(ModelError::RuntimeLoad {
            path: path.to_owned(),
            reason: "no such file".into(),
        });
    }
    let load_error = |reason: String| ModelError::RuntimeLoad {
        path: path.to_owned(),
        reason,
    };
    // `ort` refuses a library older than its API level here (`BadVersion`), with a message
    // that names both versions.
    let builder = ort::init_from(path).map_err(|e| load_error(e.to_string()))?;
    let env = builder
        .with_name("ongi")
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    Ok(&ENVIRONMENT.get_or_init(|| (path.to_owned(), env)).1)
}

/// Threads for one session: every CPU this process may use (Cloud Run's CPU limit shows up
/// in `available_parallelism` through the cgroup quota).
pub fn intra_op_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How a session uses the CPU.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub threads: usize,
    /// ONNX Runtime's workers spin while waiting for work by default. That lowers the latency
    /// of back-to-back runs but burns cores that decoding needs, so it is off by default here.
    pub spinning: bool,
    /// ONNX Runtime's CPU memory arena keeps every block it ever allocated, for reuse. That
    /// suits fixed input shapes (CLIP). A detector that sees every photo at its own size
    /// would keep the blocks of the largest one for good, so detectors run without it.
    pub arena: bool,
}

impl SessionConfig {
    pub fn threads(threads: usize) -> Self {
        Self {
            threads,
            spinning: false,
            arena: true,
        }
    }
}

/// A thread count alone: [`SessionConfig::threads`], so a model's `load` takes either.
impl From<usize> for SessionConfig {
    fn from(threads: usize) -> Self {
        Self::threads(threads)
    }
}

/// A session whose graph has the inputs and outputs its caller runs, with the name errors
/// call the model by (its file name).
pub(crate) struct CheckedSession {
    pub(crate) session: Session,
    pub(crate) name: String,
}

/// Loads `path` ([`load_session`]) and checks its I/O contract: the graph has the input
/// `input` and every output in `outputs`, so another model's file fails here, with
/// [`ModelError::Contract`], rather than at its first run.
pub(crate) fn load_checked(
    env: &Environment,
    path: &Path,
    config: SessionConfig,
    input: &str,
    outputs: &[&str],
) -> Result<CheckedSession, ModelError> {
    let session = load_session(env, path, config)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let has_input = session.inputs().iter().any(|i| i.name() == input);
    let missing: Vec<&str> = outputs
        .iter()
        .filter(|o| !session.outputs().iter().any(|s| s.name() == **o))
        .copied()
        .collect();
    if !has_input || !missing.is_empty() {
        return Err(ModelError::Contract {
            model: name,
            reason: format!("expected input {input:?} and outputs {outputs:?} (missing: {missing:?})"),
        });
    }
    Ok(CheckedSession { session, name })
}

/// Loads an ONNX model file into a session on the process's environment.
pub fn load_session(env: &Environment, path: &Path, config: SessionConfig) -> Result<Session, ModelError> {
    if !path.is_file() {
        return Err(ModelError::Missing(path.to_owned()));
    }
    let load = |reason: String| ModelError::Load {
        path: path.to_owned(),
        reason,
    };
    Session::builder(env)
        .map_err(|e| load(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| load(e.to_string()))?
        .with_intra_threads(config.threads)
        .map_err(|e| load(e.to_string()))?
        .with_intra_op_spinning(config.spinning)
        .map_err(|e| load(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| load(e.to_string()))?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(config.arena).build()])
        .map_err(|e| load(e.to_string()))?
        .with_memory_pattern(config.arena)
        .map_err(|e| load(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| load(e.to_string()))
}
