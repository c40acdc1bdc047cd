//! The face embedder: SFace (OpenCV zoo `face_recognition_sface_2021dec.onnx`, Apache-2.0,
//! production name [`FACE_EMBED_FILE`]), `data` f32 [N,3,112,112] → `fc1` f32 [N,128].
//!
//! Preprocessing is exactly OpenCV's `FaceRecognizerSF::feature`
//! (`modules/objdetect/src/face_recognize.cpp`):
//! `blobFromImage(aligned, scalefactor 1, Size(112, 112), mean 0, swapRB true, crop false)`.
//! OpenCV images are BGR, so `swapRB` makes the blob **RGB**, planar (CHW), raw 0–255 values:
//! no mean, no scale. Our crops are already RGB, so each channel is copied as it is. The crop
//! must be the 112×112 aligned face (`FaceRecognizerSF::alignCrop`: a similarity transform of
//! the 5 landmarks onto the ArcFace template, bilinear); other sizes are refused rather than
//! resized, since a resize here would only hide a misaligned crop.
//!
//! The embeddings come back L2-normalised (OpenCV's `match` normalises before comparing), so
//! cosine similarity is a dot product.

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use super::clip::l2_normalize;
use super::error::ModelError;
use super::runtime::{CheckedSession, SessionConfig, load_checked};

pub const FACE_EMBED_FILE: &str = "face-embed-sface.onnx";
/// Side of the aligned face crop.
pub const FACE_SIDE: u32 = 112;
/// Embedding width of SFace.
pub const FACE_EMBED_DIM: usize = 128;
const INPUT: &str = "data";
const OUTPUT: &str = "fc1";
const PIXELS_PER_FACE: usize = 3 * (FACE_SIDE as usize) * (FACE_SIDE as usize);
/// Faces per inference call: bounds one call's memory (150 KB of input per face).
const MAX_BATCH: usize = 64;

pub struct FaceEmbedder {
    /// ONNX Runtime sessions run with `&mut`; one batch at a time uses every intra-op thread.
    session: Mutex<Session>,
    name: String,
    /// Faces per call: [`MAX_BATCH`], or the model's fixed batch size (the zoo's export may
    /// pin it to 1).
    batch: usize,
}

impl FaceEmbedder {
    /// Loads the model with `config` (or a thread count) and checks its I/O contract: input
    /// `data` f32 of shape [N,3,112,112] and output `fc1` f32 of shape [N,128] (a dimension
    /// may be dynamic).
    pub fn load(
        env: &ort::environment::Environment,
        path: &Path,
        config: impl Into<SessionConfig>,
    ) -> Result<Self, ModelError> {
        let CheckedSession { session, name } = load_checked(env, path, config.into(), INPUT, &[OUTPUT])?;
        let contract = |reason: String| ModelError::Contract {
            model: name.clone(),
            reason,
        };
        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == INPUT)
            .ok_or_else(|| contract(format!("no input {INPUT:?}")))?;
        let input_dims = float_tensor_dims(input.dtype())
            .ok_or_else(|| contract(format!("input {INPUT:?} is not an f32 tensor")))?;
        let side = i64::from(FACE_SIDE);
        if !dims_match(&input_dims, &[-1, 3, side, side]) {
            return Err(contract(format!(
                "input {INPUT:?} has shape {input_dims:?}, expected [N, 3, {side}, {side}]"
            )));
        }
        let output = session
            .outputs()
            .iter()
            .find(|o| o.name() == OUTPUT)
            .ok_or_else(|| contract(format!("no output {OUTPUT:?}")))?;
        let output_dims = float_tensor_dims(output.dtype())
            .ok_or_else(|| contract(format!("output {OUTPUT:?} is not an f32 tensor")))?;
        if !dims_match(&output_dims, &[-1, FACE_EMBED_DIM as i64]) {
            return Err(contract(format!(
                "output {OUTPUT:?} has shape {output_dims:?}, expected [N, {FACE_EMBED_DIM}]"
            )));
        }
        let batch = match input_dims.first() {
            Some(&b) if b > 0 => usize::try_from(b).unwrap_or(1).min(MAX_BATCH),
            _ => MAX_BATCH,
        };
        Ok(Self {
            session: Mutex::new(session),
            name,
            batch,
        })
    }

    /// The model file's name (for logs and errors).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, reason: String) -> ModelError {
        ModelError::Inference {
            model: self.name.clone(),
            reason,
        }
    }

    /// One L2-normalised 128-d embedding per aligned 112×112 RGB face, in input order.
    pub fn embed(&self, faces: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(faces.len());
        for (c, chunk) in faces.chunks(self.batch).enumerate() {
            let mut data = Vec::with_capacity(chunk.len() * PIXELS_PER_FACE);
            for (i, face) in chunk.iter().enumerate() {
                preprocess_into(face, &mut data)
                    .map_err(|reason| self.fail(format!("face {}: {reason}", c * self.batch + i)))?;
            }
            out.extend(self.run(data, chunk.len())?);
        }
        Ok(out)
    }

    fn run(&self, data: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let side = i64::from(FACE_SIDE);
        let shape = vec![n as i64, 3, side, side];
        let tensor = Tensor::from_array((shape, data)).map_err(|e| self.fail(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![INPUT => tensor])
            .map_err(|e| self.fail(e.to_string()))?;
        let (shape, values) = outputs[OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| self.fail(e.to_string()))?;
        if shape.len() != 2 || shape[0] != n as i64 || shape[1] != FACE_EMBED_DIM as i64 {
            return Err(self.fail(format!("output shape {shape:?}, expected [{n}, {FACE_EMBED_DIM}]")));
        }
        let mut embeddings = Vec::with_capacity(n);
        for (i, row) in values.chunks_exact(FACE_EMBED_DIM).enumerate() {
            if row.iter().any(|x| !x.is_finite()) {
                return Err(self.fail(format!("non-finite embedding for face {i} of the batch")));
            }
            let mut v = row.to_vec();
            l2_normalize(&mut v);
            embeddings.push(v);
        }
        Ok(embeddings)
    }
}

/// Appends one face's blob to `out`: planar R, G, B planes of raw 0–255 values (OpenCV's
/// `blobFromImage(img, 1, (112, 112), 0, swapRB=true)` on the BGR crop). Refuses a crop that
/// is not 112×112.
pub fn preprocess_into(face: &RgbImage, out: &mut Vec<f32>) -> Result<(), String> {
    if face.width() != FACE_SIDE || face.height() != FACE_SIDE {
        return Err(format!(
            "crop is {}x{}, expected an aligned {FACE_SIDE}x{FACE_SIDE} face",
            face.width(),
            face.height()
        ));
    }
    let raw = face.as_raw();
    for channel in 0..3 {
        out.extend(raw.iter().skip(channel).step_by(3).map(|&v| f32::from(v)));
    }
    Ok(())
}

/// The dimensions of an f32 tensor type, or `None` for any other type.
fn float_tensor_dims(ty: &ValueType) -> Option<Vec<i64>> {
    match ty.tensor_type() {
        Some(TensorElementType::Float32) => ty.tensor_shape().map(|s| s.to_vec()),
        _ => None,
    }
}

/// Same rank, and every dimension equal where both are fixed (`-1` or `0`: dynamic/any).
fn dims_match(actual: &[i64], expected: &[i64]) -> bool {
    actual.len() == expected.len() && actual.iter().zip(expected).all(|(&a, &e)| a <= 0 || e <= 0 || a == e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_is_planar_rgb_without_scaling() {
        let mut face = RgbImage::new(FACE_SIDE, FACE_SIDE);
        face.put_pixel(0, 0, image::Rgb([10, 20, 30]));
        face.put_pixel(1, 0, image::Rgb([255, 0, 7]));
        let mut blob = Vec::new();
        preprocess_into(&face, &mut blob).expect("a 112x112 face");
        let plane = PIXELS_PER_FACE / 3;
        assert_eq!(blob.len(), PIXELS_PER_FACE);
        assert_eq!([blob[0], blob[plane], blob[2 * plane]], [10.0, 20.0, 30.0]);
        assert_eq!([blob[1], blob[plane + 1], blob[2 * plane + 1]], [255.0, 0.0, 7.0]);
    }

    #[test]
    fn other_sizes_are_refused() {
        let mut blob = Vec::new();
        assert!(preprocess_into(&RgbImage::new(96, 112), &mut blob).is_err());
        assert!(blob.is_empty());
    }

    #[test]
    fn dynamic_dimensions_match_anything() {
        assert!(dims_match(&[-1, 3, 112, 112], &[-1, 3, 112, 112]));
        assert!(dims_match(&[1, 3, 112, 112], &[-1, 3, 112, 112]));
        assert!(!dims_match(&[1, 3, 224, 224], &[-1, 3, 112, 112]));
        assert!(!dims_match(&[1, 512], &[-1, 128]));
        assert!(!dims_match(&[1, 3, 112], &[-1, 3, 112, 112]));
    }
}
