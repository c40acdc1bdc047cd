//! The GPU worker's library: Stable Diffusion 1.5 img2img for style jobs.

pub mod diffusion;
