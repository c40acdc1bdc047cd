//! What the worker asks of a diffusion model, as a small synchronous trait (TEI's backend
//! shape): the Stable Diffusion pipeline implements it, and the worker loop neither knows
//! nor cares whether it runs on CUDA or on the CPU.

use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;
use ongi_shared::queue::JobSpec;

use crate::diffusion::{DiffusionError, Img2ImgParams, StyleModel};
use crate::liveness::Liveness;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Stopped between two steps because `cancel` was set (shutdown, or the job was lost).
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

pub trait Renderer: Send + Sync + 'static {
    /// Restyles `input` as the job asks. Between denoising steps: checks `cancel`, and beats
    /// `alive` (the progress `/healthz` watches).
    fn render(
        &self,
        input: &RgbImage,
        job: &JobSpec,
        cancel: &AtomicBool,
        alive: &Liveness,
    ) -> Result<RgbImage, RenderError>;

    /// `cpu`, `cuda:0 f16`, …: for logs and `/healthz`.
    fn device(&self) -> String;
}

impl Renderer for StyleModel {
    fn render(
        &self,
        input: &RgbImage,
        job: &JobSpec,
        cancel: &AtomicBool,
        alive: &Liveness,
    ) -> Result<RgbImage, RenderError> {
        let params = Img2ImgParams {
            strength: job.strength,
            steps: job.steps as usize,
            guidance_scale: job.guidance_scale,
            seed: job.seed,
        };
        let mut on_step = |_done: usize, _total: usize| {
            alive.beat();
            cancel.load(Ordering::Relaxed)
        };
        match self.img2img(input, &job.prompt, &job.negative_prompt, &params, &mut on_step) {
            Ok(image) => Ok(image),
            Err(DiffusionError::Cancelled) => Err(RenderError::Cancelled),
            Err(e) => Err(RenderError::Failed(e.to_string())),
        }
    }

    fn device(&self) -> String {
        self.device_label()
    }
}
