//! The img2img pipeline: a loaded model and the denoising loop.
//!
//! SDEdit-style img2img as in candle's SD example and diffusers: encode the photo to latents,
//! add the noise of a point part-way into the schedule (`strength` of the way), then run DDIM
//! from there with classifier-free guidance, and decode.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::stable_diffusion::ddim::DDIMSchedulerConfig;
use candle_transformers::models::stable_diffusion::schedulers::{PredictionType, Scheduler, SchedulerConfig};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKL;
use image::RgbImage;
use image::imageops::FilterType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use super::device::{label, model_dtype};
use super::pixels::{image_to_tensor, tensor_to_image};
use super::text::TextEncoder;
use super::{Architecture, DeviceChoice, DiffusionError, target_size, weights};

/// The most DDIM steps a request may ask for; SD 1.5 gains nothing visible past ~50.
pub const MAX_STEPS: usize = 100;

/// What one img2img call does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Img2ImgParams {
    /// How far from the photo, in (0, 1]: the fraction of the `steps`-step schedule that is
    /// re-noised and denoised again. 0.75 keeps the composition and changes the style.
    pub strength: f64,
    /// The DDIM schedule's length, 1..=100; `denoising_steps()` of them run.
    pub steps: usize,
    /// Classifier-free guidance, >= 1; 1 = no guidance (one UNet pass per step, the
    /// negative prompt unused), SD's usual 7.5 = two passes per step.
    pub guidance_scale: f64,
    /// The seed of the added noise: same seed, inputs and model = same image.
    pub seed: u64,
}

impl Default for Img2ImgParams {
    fn default() -> Self {
        Img2ImgParams {
            strength: 0.75,
            steps: 30,
            guidance_scale: 7.5,
            seed: 0,
        }
    }
}

impl Img2ImgParams {
    /// Checks the ranges; `img2img` does this first.
    pub fn validate(&self) -> Result<(), DiffusionError> {
        let bad = |msg: String| Err(DiffusionError::BadInput(msg));
        if !(self.strength > 0. && self.strength <= 1.) {
            return bad(format!("strength must be in (0, 1], not {}", self.strength));
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return bad(format!("steps must be 1..={MAX_STEPS}, not {}", self.steps));
        }
        if !(self.guidance_scale >= 1. && self.guidance_scale.is_finite()) {
            return bad(format!(
                "guidance_scale must be at least 1, not {}",
                self.guidance_scale
            ));
        }
        if self.denoising_steps() == 0 {
            return bad(format!(
                "{} steps at strength {} leave no denoising step to run",
                self.steps, self.strength
            ));
        }
        Ok(())
    }

    /// The number of UNet steps that actually run (and of `on_step` calls):
    /// `floor(steps * strength)`, as candle's example and diffusers count them.
    pub fn denoising_steps(&self) -> usize {
        self.steps.saturating_sub(self.first_step())
    }

    /// Index into the schedule of the first step that runs (candle's `t_start`).
    fn first_step(&self) -> usize {
        self.steps.saturating_sub((self.steps as f64 * self.strength) as usize)
    }
}

/// Stable Diffusion loaded on a device, ready for img2img. It is `Send + Sync` and
/// `img2img` takes `&self`, so one model can serve jobs from any thread.
pub struct StyleModel {
    arch: Architecture,
    pub(super) unet: UNet2DConditionModel,
    pub(super) vae: AutoEncoderKL,
    pub(super) text: TextEncoder,
    device: Device,
    dtype: DType,
}

impl StyleModel {
    /// Loads `<sd_dir>/unet.safetensors`, `vae.safetensors` and `text_encoder.safetensors`
    /// (diffusers tensor names: the files of the runwayml/stable-diffusion-v1-5 `unet/`,
    /// `vae/` and `text_encoder/` folders, f32 or f16), with the architecture of
    /// `<sd_dir>/architecture.json` if there is one (only test models carry it) or else
    /// SD 1.5. The UNet and VAE run in f16 on CUDA and f32 on the CPU; the text encoder in
    /// f32 everywhere (see `weights::TEXT_DTYPE`).
    pub fn load(sd_dir: &Path, device: DeviceChoice) -> Result<Self, DiffusionError> {
        let arch = weights::read_architecture(sd_dir)?;
        let device = device.resolve()?;
        let dtype = model_dtype(&device);
        let components = weights::load_components(sd_dir, &arch, &device, dtype)?;
        tracing::info!(dir = %sd_dir.display(), device = %label(&device, dtype), "Stable Diffusion loaded");
        Ok(Self::assemble(arch, components, device, dtype))
    }

    /// Seeded random weights in memory for `arch`, no files: for benchmarks of the
    /// full-size architecture without its 4 GB of weights. Same seed = same weights, and
    /// the same as `write_random_model` with that seed writes.
    pub fn random(arch: &Architecture, device: DeviceChoice, seed: u64) -> Result<Self, DiffusionError> {
        arch.validate()?;
        let device = device.resolve()?;
        let dtype = model_dtype(&device);
        let components = weights::random_components(arch, seed, &device, dtype)?;
        Ok(Self::assemble(arch.clone(), components, device, dtype))
    }

    fn assemble(arch: Architecture, c: weights::Components, device: Device, dtype: DType) -> Self {
        let text = TextEncoder::new(c.text, arch.text.max_position_embeddings, device.clone());
        StyleModel {
            arch,
            unet: c.unet,
            vae: c.vae,
            text,
            device,
            dtype,
        }
    }

    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// Where the UNet and VAE run: "cpu f32" or "cuda:0 f16".
    pub fn device_label(&self) -> String {
        label(&self.device, self.dtype)
    }

    /// img2img of a photo: resized to [`target_size`] (Lanczos3), styled towards `positive`
    /// and away from `negative` (each capped at the tokenizer's 77 tokens), returned at that
    /// size. `on_step(done, total)` is called after each of the `params.denoising_steps()`
    /// denoising steps; returning true stops the run with `Err(Cancelled)`.
    pub fn img2img(
        &self,
        input: &RgbImage,
        positive: &str,
        negative: &str,
        params: &Img2ImgParams,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<RgbImage, DiffusionError> {
        params.validate()?;
        if input.width() == 0 || input.height() == 0 {
            return Err(DiffusionError::BadInput("the image is empty".into()));
        }
        let (w, h) = target_size(input.width(), input.height());
        if input.dimensions() == (w, h) {
            self.img2img_exact(input, positive, negative, params, on_step)
        } else {
            let resized = image::imageops::resize(input, w, h, FilterType::Lanczos3);
            self.img2img_exact(&resized, positive, negative, params, on_step)
        }
    }

    /// img2img at the image's own size, which must be a multiple of 8 and at least 64 on
    /// both sides: for benchmarks at chosen sizes and callers that resized already.
    pub fn img2img_exact(
        &self,
        input: &RgbImage,
        positive: &str,
        negative: &str,
        params: &Img2ImgParams,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<RgbImage, DiffusionError> {
        params.validate()?;
        let (w, h) = input.dimensions();
        if w % 8 != 0 || h % 8 != 0 || w < 64 || h < 64 {
            return Err(DiffusionError::BadInput(format!(
                "{w}x{h} is not a diffusion size (multiples of 8, at least 64; see target_size)"
            )));
        }
        let guided = params.guidance_scale > 1.;
        let scale = self.arch.vae.scaling_factor;

        // Text: [uncond, cond] in one batch so that each step is a single UNet call.
        let cond = self.text.encode(positive, self.dtype)?;
        let context = if guided {
            Tensor::cat(&[&self.text.encode(negative, self.dtype)?, &cond], 0)?
        } else {
            cond
        };

        let mut scheduler = ddim(params.steps)?;
        let timesteps = scheduler.timesteps().to_vec();
        let first = params.first_step();
        let Some(&start_t) = timesteps.get(first) else {
            return Err(DiffusionError::BadInput("no denoising step to run".into()));
        };
        let total = timesteps.len() - first;

        // The photo's latents (the posterior mode, see weights::make_encoding_deterministic)
        // noised to the first kept timestep.
        let pixels = image_to_tensor(input, &self.device, self.dtype)?;
        let latents = (self.vae.encode(&pixels)?.sample()? * scale)?;
        let noise = seeded_noise(params.seed, latents.dims(), &self.device, self.dtype)?;
        let mut latents = scheduler.add_noise(&latents, noise, start_t)?;

        for (i, &t) in timesteps[first..].iter().enumerate() {
            let input = if guided {
                Tensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let input = scheduler.scale_model_input(input, t)?;
            let noise_pred = self.unet.forward(&input, t as f64, &context)?;
            let noise_pred = if guided {
                let halves = noise_pred.chunk(2, 0)?;
                let (uncond, cond) = (&halves[0], &halves[1]);
                (uncond + ((cond - uncond)? * params.guidance_scale)?)?
            } else {
                noise_pred
            };
            latents = scheduler.step(&noise_pred, t, &latents)?;
            if on_step(i + 1, total) {
                return Err(DiffusionError::Cancelled);
            }
        }

        let decoded = self.vae.decode(&(latents / scale)?)?;
        tensor_to_image(&decoded)
    }
}

/// SD 1.5's scheduler (as `StableDiffusionConfig::v1_5` builds it): DDIM, scaled-linear betas
/// 0.00085..0.012, "leading" spacing with offset 1, epsilon prediction, and eta 0, so that a
/// step adds no noise from candle's unseeded generator.
fn ddim(steps: usize) -> candle_core::Result<Box<dyn Scheduler>> {
    DDIMSchedulerConfig {
        prediction_type: PredictionType::Epsilon,
        eta: 0.,
        ..Default::default()
    }
    .build(steps)
}

/// N(0, 1) noise from the seed, drawn on the CPU (candle's CPU generator cannot be seeded, and
/// CUDA's would give different numbers) and then moved, so every device sees the same noise.
fn seeded_noise(seed: u64, dims: &[usize], device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = dims.iter().product();
    let values: Vec<f32> = StandardNormal.sample_iter(&mut rng).take(n).collect();
    Tensor::from_vec(values, dims, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)
}

/// Times `rounds` img2img runs at exactly `size` (multiples of 8, at least 64) on a smooth
/// gradient, and returns the seconds of each. One round is what a style job costs once the
/// model is loaded: both prompts through the text encoder, the VAE encode, `steps * 0.75`
/// (rounded down) guided UNet steps at batch 2 (guidance 7.5), the VAE decode and the copy of
/// the image back to the host. Rounds use different seeds; the first includes any
/// device warm-up (kernel loading), so callers usually report it apart.
pub fn bench_img2img(
    model: &StyleModel,
    size: (u32, u32),
    steps: usize,
    rounds: usize,
) -> Result<Vec<f64>, DiffusionError> {
    let (w, h) = size;
    let input = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            ((x + y) * 127 / (w + h).max(1)) as u8,
        ])
    });
    (0..rounds)
        .map(|round| {
            let params = Img2ImgParams {
                strength: 0.75,
                steps,
                guidance_scale: 7.5,
                seed: round as u64,
            };
            let start = Instant::now();
            model.img2img_exact(
                &input,
                "a watercolor painting, soft light",
                "blurry, low quality",
                &params,
                &mut |_, _| false,
            )?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect()
}
