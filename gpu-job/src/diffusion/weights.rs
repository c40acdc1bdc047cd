//! Where the three networks' tensors come from: a model folder (diffusers tensor names, the
//! files candle's SD example loads from the Hugging Face diffusers layout) or seeded random
//! values, and the one patch applied to every VAE so that encoding is deterministic.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use candle_transformers::models::stable_diffusion::{unet_2d::UNet2DConditionModel, vae::AutoEncoderKL};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::{Architecture, DiffusionError};

pub(crate) const UNET_FILE: &str = "unet.safetensors";
pub(crate) const VAE_FILE: &str = "vae.safetensors";
pub(crate) const TEXT_FILE: &str = "text_encoder.safetensors";
/// Only test models carry it; the production folder is SD 1.5 and has none.
pub(crate) const ARCHITECTURE_FILE: &str = "architecture.json";

/// The text encoder always runs in f32, as candle's SD example does even with `--use-f16`:
/// it runs twice per image on 77 tokens, so f16 would save ~250 MB and no noticeable time,
/// while CLIP's final layer norm and large activations are where f16 loses precision.
pub(crate) const TEXT_DTYPE: DType = DType::F32;

/// The log-variance the VAE encoder is patched to output (see `make_encoding_deterministic`).
const PATCHED_LOGVAR: f32 = -30.;

/// The three networks, ready to run.
pub(crate) struct Components {
    pub unet: UNet2DConditionModel,
    pub vae: AutoEncoderKL,
    pub text: ClipTextTransformer,
}

/// `<sd_dir>/architecture.json`, or SD 1.5 when there is none.
pub(crate) fn read_architecture(sd_dir: &Path) -> Result<Architecture, DiffusionError> {
    let path = sd_dir.join(ARCHITECTURE_FILE);
    let arch = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| DiffusionError::BadWeights(format!("{} is not a valid architecture: {e}", path.display())))?,
        Err(e) if e.kind() == ErrorKind::NotFound => Architecture::sd15(),
        Err(e) => {
            return Err(DiffusionError::BadWeights(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    arch.validate()?;
    Ok(arch)
}

/// Builds the networks from the model folder's three safetensors files.
pub(crate) fn load_components(
    sd_dir: &Path,
    arch: &Architecture,
    device: &Device,
    dtype: DType,
) -> Result<Components, DiffusionError> {
    // All three are checked before the first (multi-gigabyte) read, so a half-installed
    // folder fails at once and names the file.
    let paths: Vec<PathBuf> = [UNET_FILE, VAE_FILE, TEXT_FILE]
        .iter()
        .map(|f| sd_dir.join(f))
        .collect();
    if let Some(path) = paths.iter().find(|p| !p.is_file()) {
        return Err(DiffusionError::MissingWeights { path: path.clone() });
    }
    let (unet_path, vae_path, text_path) = (&paths[0], &paths[1], &paths[2]);

    // Buffered rather than memory-mapped: mmap is `unsafe` in candle (a file changed under a
    // running worker would be undefined behaviour), and the bytes are dropped as soon as the
    // networks hold their own (device, dtype) copies.
    let unet = {
        let vb = VarBuilder::from_buffered_safetensors(read(unet_path)?, dtype, device).map_err(bad(unet_path))?;
        build_unet(vb, arch).map_err(bad(unet_path))?
    };
    let text = {
        let vb = VarBuilder::from_buffered_safetensors(read(text_path)?, TEXT_DTYPE, device).map_err(bad(text_path))?;
        build_text(vb, arch).map_err(bad(text_path))?
    };
    let vae = {
        let tensors = candle_core::safetensors::load_buffer(&read(vae_path)?, &Device::Cpu).map_err(bad(vae_path))?;
        build_vae(tensors, arch, device, dtype).map_err(bad(vae_path))?
    };
    Ok(Components { unet, vae, text })
}

/// Builds the networks from seeded random tensors, in memory.
pub(crate) fn random_components(
    arch: &Architecture,
    seed: u64,
    device: &Device,
    dtype: DType,
) -> Result<Components, DiffusionError> {
    let tensors = random_tensors(arch, seed)?;
    let internal = |e: candle_core::Error| DiffusionError::BadWeights(format!("random weights: {e}"));
    let unet = build_unet(VarBuilder::from_tensors(tensors.unet, dtype, device), arch).map_err(internal)?;
    let text = build_text(VarBuilder::from_tensors(tensors.text, TEXT_DTYPE, device), arch).map_err(internal)?;
    let vae = build_vae(tensors.vae, arch, device, dtype).map_err(internal)?;
    Ok(Components { unet, vae, text })
}

/// Writes a model folder with random weights for `arch` (the three safetensors files and
/// `architecture.json`) that [`StyleModel::load`](super::StyleModel::load) reads back; for
/// tests and demos. The same `seed` gives the same files (and the same weights as
/// [`StyleModel::random`](super::StyleModel::random) with that seed).
pub fn write_random_model(sd_dir: &Path, arch: &Architecture, seed: u64) -> Result<(), DiffusionError> {
    arch.validate()?;
    let cannot_write = |path: &Path, e: &dyn std::fmt::Display| {
        DiffusionError::BadInput(format!("cannot write the model folder at {}: {e}", path.display()))
    };
    std::fs::create_dir_all(sd_dir).map_err(|e| cannot_write(sd_dir, &e))?;
    let tensors = random_tensors(arch, seed)?;
    for (file, map) in [
        (UNET_FILE, &tensors.unet),
        (VAE_FILE, &tensors.vae),
        (TEXT_FILE, &tensors.text),
    ] {
        let path = sd_dir.join(file);
        candle_core::safetensors::save(map, &path).map_err(|e| cannot_write(&path, &e))?;
    }
    let json = serde_json::to_string_pretty(arch).map_err(|e| cannot_write(sd_dir, &e))?;
    let path = sd_dir.join(ARCHITECTURE_FILE);
    std::fs::write(&path, json + "\n").map_err(|e| cannot_write(&path, &e))?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, DiffusionError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => DiffusionError::MissingWeights {
            path: path.to_path_buf(),
        },
        _ => DiffusionError::BadWeights(format!("cannot read {}: {e}", path.display())),
    })
}

fn bad(path: &Path) -> impl Fn(candle_core::Error) -> DiffusionError + '_ {
    move |e| DiffusionError::BadWeights(format!("{}: {e}", path.display()))
}

fn build_unet(vb: VarBuilder, arch: &Architecture) -> candle_core::Result<UNet2DConditionModel> {
    // 4 latent channels in and out; flash attention is a separate candle feature we do not build.
    UNet2DConditionModel::new(vb, 4, 4, false, arch.unet_config())
}

fn build_text(vb: VarBuilder, arch: &Architecture) -> candle_core::Result<ClipTextTransformer> {
    // diffusers' text_encoder/model.safetensors is a transformers CLIPTextModel: all under
    // `text_model.`.
    ClipTextTransformer::new(vb.pp("text_model"), &arch.text_config())
}

fn build_vae(
    mut tensors: HashMap<String, Tensor>,
    arch: &Architecture,
    device: &Device,
    dtype: DType,
) -> candle_core::Result<AutoEncoderKL> {
    make_encoding_deterministic(&mut tensors, arch)?;
    AutoEncoderKL::new(
        VarBuilder::from_tensors(tensors, dtype, device),
        3,
        3,
        arch.vae_config(),
    )
}

/// img2img starts from `vae.encode(image).sample()`, and candle's
/// `DiagonalGaussianDistribution::sample` draws `mean + std * noise` from candle's own RNG,
/// which cannot be seeded on the CPU device; its `mean` is private, so the mode cannot be
/// asked for either. So the layer that produces the distribution's parameters (`quant_conv`,
/// or the encoder's `conv_out` when a VAE has none) is patched: its output channels are
/// `[mean; log-variance]`, and zeroing the log-variance half's weights and setting that half
/// of the bias to -30 makes `std = exp(-15) ~ 3e-7`. `sample()` is then the mean plus noise
/// far below what f32 (let alone f16, or an 8-bit pixel) can show: the posterior mode, as
/// diffusers gives with `retrieve_latents(..., sample_mode="argmax")`. Only the noise the
/// pipeline adds from its seeded generator remains.
fn make_encoding_deterministic(tensors: &mut HashMap<String, Tensor>, arch: &Architecture) -> candle_core::Result<()> {
    let layer = if arch.vae.use_quant_conv {
        "quant_conv"
    } else {
        "encoder.conv_out"
    };
    let latent = arch.vae.latent_channels;
    let (weight_name, bias_name) = (format!("{layer}.weight"), format!("{layer}.bias"));
    let (Some(weight), Some(bias)) = (tensors.get(&weight_name), tensors.get(&bias_name)) else {
        candle_core::bail!("the VAE has no {weight_name} / {bias_name}");
    };
    if weight.dims().first() != Some(&(2 * latent)) || bias.dims() != [2 * latent] {
        candle_core::bail!(
            "{layer} has shape {:?} / {:?}, expected {} output channels (mean and log-variance)",
            weight.dims(),
            bias.dims(),
            2 * latent
        );
    }
    let (weight_dtype, bias_dtype) = (weight.dtype(), bias.dtype());
    let weight = weight.to_dtype(DType::F32)?;
    let mean_weight = weight.narrow(0, 0, latent)?;
    let weight = Tensor::cat(&[&mean_weight, &mean_weight.zeros_like()?], 0)?.to_dtype(weight_dtype)?;
    let mean_bias = bias.to_dtype(DType::F32)?.narrow(0, 0, latent)?;
    let logvar_bias = Tensor::full(PATCHED_LOGVAR, latent, &Device::Cpu)?.to_device(mean_bias.device())?;
    let bias = Tensor::cat(&[&mean_bias, &logvar_bias], 0)?.to_dtype(bias_dtype)?;
    tensors.insert(weight_name, weight);
    tensors.insert(bias_name, bias);
    Ok(())
}

/// The random tensors of the three files, named as in the real files.
struct RandomTensors {
    unet: HashMap<String, Tensor>,
    vae: HashMap<String, Tensor>,
    text: HashMap<String, Tensor>,
}

/// Builds each network once on a recording backend, which is how the tensors' names,
/// shapes and candle's intended initialisations are learnt without a list of our own.
fn random_tensors(arch: &Architecture, seed: u64) -> Result<RandomTensors, DiffusionError> {
    let internal = |e: candle_core::Error| DiffusionError::BadWeights(format!("random weights: {e}"));
    let record = |component: &str, build: &dyn Fn(VarBuilder<'static>) -> candle_core::Result<()>| {
        let backend = Arc::new(SeededInit::new(seed, component));
        let vb = VarBuilder::from_backend(Box::new(SharedInit(backend.clone())), DType::F32, Device::Cpu);
        build(vb).map_err(internal)?;
        backend.take().map_err(internal)
    };
    let unet = record("unet", &|vb| build_unet(vb, arch).map(drop))?;
    let vae = record("vae", &|vb| AutoEncoderKL::new(vb, 3, 3, arch.vae_config()).map(drop))?;
    let text = record("text", &|vb| build_text(vb, arch).map(drop))?;
    Ok(RandomTensors { unet, vae, text })
}

/// A `VarBuilder` backend that invents each requested tensor from candle's initialisation
/// hint (Kaiming for weights, ones/zeros for norms, N(0,1) for embeddings), with values from
/// a `StdRng` seeded by (seed, component, tensor name): unlike a `VarMap`, whose values come
/// from candle's unseeded RNG, the same seed gives the same weights, and a tensor's values do
/// not depend on the order in which candle asks for them.
struct SeededInit {
    seed: u64,
    component: String,
    /// name -> (tensor, whether it came from a constant hint)
    made: Mutex<HashMap<String, (Tensor, bool)>>,
}

struct SharedInit(Arc<SeededInit>);

impl SeededInit {
    fn new(seed: u64, component: &str) -> Self {
        SeededInit {
            seed,
            component: component.to_string(),
            made: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> candle_core::Result<std::sync::MutexGuard<'_, HashMap<String, (Tensor, bool)>>> {
        self.made
            .lock()
            .map_err(|_| candle_core::Error::Msg("random weight generator poisoned".into()))
    }

    fn take(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        Ok(std::mem::take(&mut *self.lock()?)
            .into_iter()
            .map(|(name, (tensor, _))| (name, tensor))
            .collect())
    }

    fn rng(&self, name: &str) -> StdRng {
        // FNV-1a over "component/name", then mixed with the seed.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.component.bytes().chain(*b"/").chain(name.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        StdRng::seed_from_u64(hash ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn invent(&self, shape: &Shape, name: &str, init: Init) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let rng = &mut self.rng(name);
        let values: Vec<f32> = match init {
            Init::Const(value) => vec![value as f32; n],
            Init::Uniform { lo, up } => uniform(rng, n, lo, up),
            Init::Randn { mean, stdev } => normal(rng, n, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                // candle_nn::Init::var's formula.
                let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => uniform(rng, n, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
                    NormalOrUniform::Normal => normal(rng, n, 0., std),
                }
            }
        };
        Tensor::from_vec(values, shape.clone(), &Device::Cpu)
    }
}

fn uniform(rng: &mut StdRng, n: usize, lo: f64, up: f64) -> Vec<f32> {
    (0..n).map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32).collect()
}

fn normal(rng: &mut StdRng, n: usize, mean: f64, stdev: f64) -> Vec<f32> {
    (0..n)
        .map(|_| (mean + stdev * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect()
}

impl SimpleBackend for SharedInit {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let this = &self.0;
        let mut made = this.lock()?;
        let from_const = matches!(init, Init::Const(_));
        if let Some((tensor, made_from_const)) = made.get(name) {
            if tensor.shape() != &shape {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: shape,
                    got: tensor.shape().clone(),
                });
            }
            // candle sometimes probes a tensor with the default (zero) hint before asking for
            // it properly (the VAE attention's `get_qkv_linear`); a later random hint wins, or
            // those layers would be all zeros.
            if from_const || !made_from_const {
                return tensor.to_device(device)?.to_dtype(dtype);
            }
        }
        let tensor = this.invent(&shape, name, init)?;
        made.insert(name.to_string(), (tensor.clone(), from_const));
        tensor.to_device(device)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        match self.0.lock()?.get(name) {
            Some((tensor, _)) => tensor.to_device(device)?.to_dtype(dtype),
            None => Err(candle_core::Error::CannotFindTensor { path: name.to_string() }),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        // As a VarMap answers: only what was already made. candle uses it to pick between
        // naming schemes (VAE attention `to_q` vs `query`), so a fresh model gets the default.
        self.0.lock().map(|made| made.contains_key(name)).unwrap_or(false)
    }
}
