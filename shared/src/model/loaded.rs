//! The models a process has, loaded once at start-up. Loading never fails the process:
//! what is missing is recorded (and said in one line at start), and the analyses that need
//! no model (pixel features: duplicates, blur, exposure) still run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::aesthetic::{AESTHETIC_FILE, AestheticHead};
use super::clip::{ClipTextual, ClipVisual, TEXTUAL_FILE, VISUAL_FILE};
use super::error::ModelError;
use super::face::mtcnn::Mtcnn;
use super::face::yunet::{self, YuNet};
use super::face::{DetectOptions, FaceDetector};
use super::face_embed::{FACE_EMBED_FILE, FaceEmbedder};
use super::manifest::sha256_stamped;
use super::runtime;
use super::runtime::SessionConfig;
use crate::config::FaceDetector as DetectorChoice;

/// Model id of feature records computed without a CLIP model (pixel features only).
pub const PIXELS_ONLY: &str = "pixels-only";

pub struct Models {
    pub clip_visual: Option<Arc<ClipVisual>>,
    pub clip_textual: Option<Arc<ClipTextual>>,
    /// The LAION aesthetic linear head (pure Rust, no ONNX Runtime needed).
    pub aesthetic: Option<AestheticHead>,
    /// The face detector chosen by `ONGI_FACE_DETECTOR`, and the face embedder.
    pub face_detector: Option<Arc<dyn FaceDetector>>,
    pub face_embedder: Option<Arc<FaceEmbedder>>,
    /// `<detector>@<sha>+sface@<sha>`: part of the face cache keys.
    pub face_model_id: String,
    /// `clip-vit-b32@<sha256 prefix of the visual file>`, or [`PIXELS_ONLY`]. Part of every
    /// cache key, so a new model never reads another model's vectors.
    pub clip_model_id: String,
    /// One line per model that could not be loaded.
    pub missing: Vec<String>,
    /// The ONNX Runtime library the models run on, and where it was found.
    pub runtime: Runtime,
}

/// The ONNX Runtime library behind a process's models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// This process loads no ONNX model.
    NotNeeded,
    /// Loaded from `library`, found in `found_in` (as the start-up log says it; empty when
    /// the caller named the library).
    Loaded { library: PathBuf, found_in: String },
    /// Needed but not found or not loadable: the ONNX models are missing.
    Missing,
}

impl Models {
    /// No models at all: pixel features only.
    pub fn none(reason: impl Into<String>) -> Self {
        Self {
            clip_visual: None,
            clip_textual: None,
            aesthetic: None,
            face_detector: None,
            face_embedder: None,
            face_model_id: String::new(),
            clip_model_id: PIXELS_ONLY.to_owned(),
            missing: vec![reason.into()],
            runtime: Runtime::NotNeeded,
        }
    }

    /// Only the models that need no ONNX Runtime (the aesthetic head), for a process whose
    /// runtime could not be loaded: `why` is the first missing line.
    pub fn without_runtime(dir: &Path, why: &ModelError) -> Self {
        let mut models = Self::none(why.to_string());
        models.runtime = Runtime::Missing;
        match AestheticHead::load(&dir.join(AESTHETIC_FILE)) {
            Ok(head) => models.aesthetic = Some(head),
            Err(e) => models.missing.push(e.to_string()),
        }
        models
    }

    /// Loads the CLIP text encoder and the aesthetic head from `dir` with ONNX Runtime from
    /// `ort_library`, and the image encoder only `with_visual` (the process embeds photos
    /// itself): the analysis functions on Cloud Run ask the embedding service instead and
    /// need only the image encoder's id, for cache keys, not its 350 MB session.
    pub fn load(dir: &Path, ort_library: Option<&Path>, with_visual: bool) -> Self {
        let env = match runtime::environment(ort_library, "CLIP") {
            Ok(env) => env,
            Err(e) => return Self::without_runtime(dir, &e),
        };
        let aesthetic = AestheticHead::load(&dir.join(AESTHETIC_FILE));
        let threads = runtime::intra_op_threads();
        let mut missing = Vec::new();
        let visual_path = dir.join(VISUAL_FILE);
        let textual_path = dir.join(TEXTUAL_FILE);
        // The two encoders are loaded side by side: building a session (reading the graph,
        // optimising it) is most of a start-up, and each build uses one core.
        let (visual, textual) = std::thread::scope(|scope| {
            let textual = scope.spawn(|| ClipTextual::load(env, &textual_path, threads));
            let visual = if with_visual {
                ClipVisual::load(env, &visual_path, threads).map(|m| Some(Arc::new(m)))
            } else {
                Ok(None)
            };
            let textual = textual.join().unwrap_or_else(|_| {
                Err(ModelError::Load {
                    path: textual_path.clone(),
                    reason: "the loading thread panicked".into(),
                })
            });
            (visual, textual)
        });
        let (clip_visual, clip_model_id) = match visual.and_then(|m| Ok((m, model_id("clip-vit-b32", &visual_path)?))) {
            Ok((m, id)) => (m, id),
            Err(e) => {
                missing.push(e.to_string());
                (None, PIXELS_ONLY.to_owned())
            }
        };
        let clip_textual = match textual {
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
            face_detector: None,
            face_embedder: None,
            face_model_id: String::new(),
            clip_model_id,
            missing,
            runtime: Runtime::Loaded {
                library: ort_library.map(Path::to_owned).unwrap_or_default(),
                found_in: String::new(),
            },
        }
    }

    /// The one start-up line for a process that lacks models (`None` when it has them all):
    /// which failed to load, what still runs, and how to add them.
    pub fn missing_line(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            // The runtime's own line names its other fixes (pip, ORT_DYLIB_PATH).
            let fix = if self.runtime == Runtime::Missing {
                "run `ongi models fetch` (the models and the ONNX Runtime library)"
            } else {
                "run `ongi models fetch`"
            };
            format!(
                "running without some models ({}): the pixel analyses (duplicates by pHash, blur, exposure) still run; \
                 to add them, {fix}",
                self.missing.join("; ")
            )
        })
    }

    /// Adds the face models (people): the chosen detector and the SFace embedder.
    pub fn load_faces(&mut self, dir: &Path, ort_library: Option<&Path>, choice: DetectorChoice) {
        let env = match runtime::environment(ort_library, "face detection") {
            Ok(env) => env,
            Err(e) => return self.missing.push(e.to_string()),
        };
        let config = SessionConfig::threads(runtime::intra_op_threads());
        let detector: Result<(Arc<dyn FaceDetector>, String), ModelError> = match choice {
            DetectorChoice::Yunet => {
                let path = dir.join(yunet::FILE);
                YuNet::load(env, &path, config, DetectOptions::YUNET)
                    .and_then(|d| Ok((Arc::new(d) as Arc<dyn FaceDetector>, model_id("yunet", &path)?)))
            }
            DetectorChoice::Mtcnn => Mtcnn::load(env, dir, config, DetectOptions::MTCNN).and_then(|d| {
                Ok((
                    Arc::new(d) as Arc<dyn FaceDetector>,
                    model_id("mtcnn", &dir.join(super::face::mtcnn::ONET_FILE))?,
                ))
            }),
        };
        let embed_path = dir.join(FACE_EMBED_FILE);
        let embedder = FaceEmbedder::load(env, &embed_path, config)
            .and_then(|e| Ok((Arc::new(e), model_id("sface", &embed_path)?)));
        match (detector, embedder) {
            (Ok((d, did)), Ok((e, eid))) => {
                self.face_detector = Some(d);
                self.face_embedder = Some(e);
                self.face_model_id = format!("{did}+{eid}");
            }
            (d, e) => {
                if let Err(err) = d {
                    self.missing.push(err.to_string());
                }
                if let Err(err) = e {
                    self.missing.push(err.to_string());
                }
            }
        }
    }
}

/// `name@<first 12 hex digits of the file's SHA-256>`: changes whenever the weights do. The
/// hash comes from the model folder's stamp while the file is unchanged (see
/// `manifest::sha256_stamped`): a start-up does not read the 350 MB CLIP graph a second time.
fn model_id(name: &str, path: &Path) -> Result<String, ModelError> {
    let sha256 = sha256_stamped(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::Missing(path.to_owned()),
        _ => ModelError::Load {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })?;
    Ok(format!("{name}@{}", &sha256[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_line_names_each_failure_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let mut models = Models::without_runtime(dir.path(), &ModelError::RuntimeNotFound("searched here".into()));
        let line = models.missing_line().expect("a line when models are missing");
        assert!(
            line.contains("(no ONNX Runtime library found (searched here; "),
            "{line}"
        );
        assert!(
            line.contains("ONNX Runtime library)"),
            "the fix names the library: {line}"
        );
        assert!(line.contains(AESTHETIC_FILE), "{line}");
        assert!(
            line.contains("ongi models fetch")
                && line.contains("pip install onnxruntime==1.32.0")
                && line.contains("ORT_DYLIB_PATH"),
            "{line}"
        );
        assert!(!line.contains('\n'), "one line: {line}");

        // With the runtime loaded, only the models are to add.
        models.runtime = Runtime::Loaded {
            library: "libonnxruntime.so".into(),
            found_in: "the model folder".into(),
        };
        models.missing = vec![ModelError::Missing("models/clip.onnx".into()).to_string()];
        let line = models.missing_line().expect("still a line");
        assert!(line.contains("ongi models fetch"), "{line}");
        assert!(
            !line.contains("pip install") && !line.contains("ORT_DYLIB_PATH"),
            "{line}"
        );
        models.missing.clear();
        assert_eq!(models.missing_line(), None);
    }
}
