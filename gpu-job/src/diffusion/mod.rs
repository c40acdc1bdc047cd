//! Stable Diffusion 1.5 img2img on candle: the style transfer of the GPU worker.
//!
//! A [`StyleModel`] is loaded once from the model folder's `sd15/` (or made with random
//! weights for tests and benchmarks) and then turns photos into styled images with
//! [`StyleModel::img2img`]. Runs are deterministic: the only randomness is the noise drawn
//! from [`Img2ImgParams::seed`].
//!
//! - `architecture.rs`: the (serde) shape of the networks, SD 1.5 and a tiny test variant.
//! - `weights.rs`: tensors from the model folder or seeded random ones; the VAE patch that
//!   makes encoding deterministic.
//! - `text.rs`: prompt tokenising and the CLIP text encoder.
//! - `pipeline.rs`: the model and the img2img loop (DDIM, classifier-free guidance).
//! - `pixels.rs`: images to tensors and back, with the NaN guard.
//! - `size.rs`: the working size of a photo.
//! - `device.rs`: CPU or CUDA, and the dtype that goes with it.

mod architecture;
mod device;
mod error;
mod pipeline;
mod pixels;
mod size;
mod text;
mod weights;

#[cfg(test)]
mod tests;

pub use architecture::{Architecture, TextArchitecture, UNetArchitecture, UNetBlock, VaeArchitecture};
pub use device::DeviceChoice;
pub use error::DiffusionError;
pub use pipeline::{Img2ImgParams, MAX_STEPS, StyleModel, bench_img2img};
pub use size::target_size;
pub use weights::write_random_model;
