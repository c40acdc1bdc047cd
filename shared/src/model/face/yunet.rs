//! YuNet (OpenCV zoo `face_detection_yunet_2023mar.onnx`, production name
//! [`FILE`]) on ONNX Runtime, decoded as OpenCV's `cv::FaceDetectorYN` does
//! (`modules/objdetect/src/face_detect.cpp`):
//!
//! - input `input` f32 `[1, 3, H, W]`, BGR, raw 0..255; the photo is zero-padded on the
//!   right and bottom to multiples of 32;
//! - per stride s ∈ {8, 16, 32}, over the `H/s × W/s` cells in row-major order:
//!   `cls_s`, `obj_s` `[1, n, 1]`, `bbox_s` `[1, n, 4]`, `kps_s` `[1, n, 10]`;
//! - score = `sqrt(clamp(cls) · clamp(obj))`; box centre `((col + dx)·s, (row + dy)·s)`,
//!   size `(exp(dw)·s, exp(dh)·s)`; keypoint k = `((col + kx)·s, (row + ky)·s)`, in the order
//!   right eye, left eye, nose, right and left mouth corners of the subject, which is left
//!   to right as seen in the photo, the order of [`Face::landmarks`];
//! - NMS (IoU) over the best `top_k` = 5000.

use std::path::Path;

use image::RgbImage;
use image::imageops::{FilterType, resize};
use ort::environment::Environment;

use super::{
    DetectOptions, Face, FaceDetector, MAX_DETECTION_PIXELS, OnnxNet, Overlap, finish, nms_indices, sane_scale,
};
use crate::model::error::ModelError;
use crate::model::runtime::SessionConfig;

pub const FILE: &str = "face-detect-yunet.onnx";
/// The smallest face, in the pixels YuNet sees, it finds reliably (its finest stride is 8).
pub const NATIVE_MIN_FACE: f32 = 10.0;
const STRIDES: [usize; 3] = [8, 16, 32];
const OUTPUTS: [&str; 12] = [
    "cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32", "kps_8", "kps_16",
    "kps_32",
];
const TOP_K: usize = 5000;
/// `exp` of a larger box offset is not a face (and would overflow soon after).
const MAX_LOG_SIZE: f32 = 16.0;

pub struct YuNet {
    net: OnnxNet,
    options: DetectOptions,
}

impl YuNet {
    pub fn load(
        env: &Environment,
        path: &Path,
        config: SessionConfig,
        options: DetectOptions,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            net: OnnxNet::load(env, path, config, "input", &OUTPUTS)?,
            options,
        })
    }

    /// Decodes the 12 outputs for a `pw × ph` padded input into faces above the threshold.
    fn decode(&self, outs: &[super::Output], pw: usize, ph: usize) -> Result<Vec<Face>, ModelError> {
        let threshold = self.options.score_threshold;
        let mut faces = Vec::new();
        for (i, &s) in STRIDES.iter().enumerate() {
            let (cols, rows) = (pw / s, ph / s);
            let n = cols * rows;
            let [cls, obj, bbox, kps] = [0, 1, 2, 3].map(|h| &outs[i + 3 * h]);
            for (o, k) in [(cls, 1), (obj, 1), (bbox, 4), (kps, 10)] {
                if o.values.len() != n * k {
                    return Err(self.net.fail(format!(
                        "stride {s}: output shape {:?} for a {pw}x{ph} input, expected [1, {n}, {k}]",
                        o.shape
                    )));
                }
            }
            let sf = s as f32;
            for idx in 0..n {
                let score = (cls.values[idx].clamp(0.0, 1.0) * obj.values[idx].clamp(0.0, 1.0)).sqrt();
                if score.is_nan() || score < threshold {
                    continue;
                }
                let (r, c) = ((idx / cols) as f32, (idx % cols) as f32);
                let b = &bbox.values[idx * 4..idx * 4 + 4];
                let cx = (c + b[0]) * sf;
                let cy = (r + b[1]) * sf;
                let w = b[2].min(MAX_LOG_SIZE).exp() * sf;
                let h = b[3].min(MAX_LOG_SIZE).exp() * sf;
                let k = &kps.values[idx * 10..idx * 10 + 10];
                let mut landmarks = [[0.0f32; 2]; 5];
                for (j, lm) in landmarks.iter_mut().enumerate() {
                    *lm = [(k[2 * j] + c) * sf, (k[2 * j + 1] + r) * sf];
                }
                faces.push(Face {
                    bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                    score,
                    landmarks,
                });
            }
        }
        Ok(faces)
    }
}

impl YuNet {
    /// How much a `w`x`h` input at `scale` (original pixels per pixel) is upsampled: when the
    /// smallest wanted face would fall below what YuNet sees, but never past max_side (or the
    /// input's own size if that is larger), nor past [`MAX_DETECTION_PIXELS`].
    fn upsampling(&self, w: u32, h: u32, scale: f32) -> f32 {
        let min_face = self.options.min_face_px / scale;
        let long = w.max(h) as f32;
        let mut up = if min_face.is_finite() && min_face > 0.0 {
            (NATIVE_MIN_FACE / min_face).max(1.0)
        } else {
            1.0
        };
        up = up.min((self.options.max_side as f32).max(long) / long);
        up.min((MAX_DETECTION_PIXELS / (w as f32 * h as f32).max(1.0)).sqrt().max(1.0))
    }
}

impl FaceDetector for YuNet {
    fn detect(&self, image: &RgbImage, scale_to_original: f32) -> Result<Vec<Face>, ModelError> {
        let scale = sane_scale(scale_to_original);
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let up = self.upsampling(w, h, scale);
        let upsampled;
        let (work, work_scale) = if up > 1.01 {
            let (uw, uh) = ((w as f32 * up).round() as u32, (h as f32 * up).round() as u32);
            upsampled = resize(image, uw, uh, FilterType::Triangle);
            (&upsampled, scale * w as f32 / uw as f32)
        } else {
            (image, scale)
        };
        let (iw, ih) = (work.width() as usize, work.height() as usize);
        let (pw, ph) = (iw.div_ceil(32) * 32, ih.div_ceil(32) * 32);
        // BGR planes, zero padding on the right and bottom.
        let plane = pw * ph;
        let mut data = vec![0.0f32; 3 * plane];
        for (x, y, p) in work.enumerate_pixels() {
            let i = y as usize * pw + x as usize;
            data[i] = f32::from(p[2]);
            data[plane + i] = f32::from(p[1]);
            data[2 * plane + i] = f32::from(p[0]);
        }
        let outs = self.net.run(vec![1, 3, ph as i64, pw as i64], data)?;
        let mut faces = self.decode(&outs, pw, ph)?;
        // Clip before NMS, so the faces returned overlap by at most the NMS threshold.
        let (fw, fh) = (iw as f32, ih as f32);
        for f in &mut faces {
            f.bbox = [
                f.bbox[0].clamp(0.0, fw),
                f.bbox[1].clamp(0.0, fh),
                f.bbox[2].clamp(0.0, fw),
                f.bbox[3].clamp(0.0, fh),
            ];
        }
        if faces.len() > TOP_K {
            faces.sort_by(|a, b| b.score.total_cmp(&a.score));
            faces.truncate(TOP_K);
        }
        let boxes: Vec<[f32; 4]> = faces.iter().map(|f| f.bbox).collect();
        let scores: Vec<f32> = faces.iter().map(|f| f.score).collect();
        let kept: Vec<Face> = nms_indices(&boxes, &scores, self.options.nms_iou, Overlap::Union)
            .into_iter()
            .map(|i| faces[i])
            .collect();
        let bounds = (w as f32 * scale, h as f32 * scale);
        Ok(finish(kept, work_scale, bounds, &self.options))
    }

    fn options(&self) -> &DetectOptions {
        &self.options
    }

    fn native_min_face(&self) -> f32 {
        NATIVE_MIN_FACE
    }

    /// The padded input as f32 and the network's feature maps. Not measured on the real
    /// weights (none can be fetched here): YuNet's largest maps are 16 and 32 channels at
    /// half and quarter resolution, about 50 bytes per input pixel; reserved at twice that.
    fn working_bytes(&self, width: u32, height: u32, scale_to_original: f32) -> u64 {
        let up = f64::from(self.upsampling(width, height, sane_scale(scale_to_original)));
        let w = (f64::from(width) * up).ceil() as u64 + 32;
        let h = (f64::from(height) * up).ceil() as u64 + 32;
        w * h * 100
    }
}
