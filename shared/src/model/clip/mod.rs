//! CLIP ViT-B/32: the image encoder (photos → 512-d), the text encoder (prompts → 512-d)
//! and the standard preprocessing. Both encoders are ONNX graphs run by ONNX Runtime.

mod encoder;
pub mod preprocess;
pub(crate) mod textual;
pub(crate) mod visual;

pub use textual::ClipTextual;
pub use visual::ClipVisual;

/// Embedding width of ViT-B/32.
pub const EMBED_DIM: usize = 512;

pub const VISUAL_FILE: &str = "clip-vit-b32-visual.onnx";
pub const TEXTUAL_FILE: &str = "clip-vit-b32-textual.onnx";

/// Scales a vector to unit length (cosine similarity becomes a dot product).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
