//! The shape of a Stable Diffusion model: UNet, VAE and CLIP text encoder hyper-parameters.
//!
//! candle's own configs are neither (de)serialisable nor, in `StableDiffusionConfig`,
//! readable (its `unet` and `autoencoder` fields are private), so this module mirrors them in
//! plain serde structs. A model folder may carry them as `architecture.json`; the production
//! folder does not, and gets [`Architecture::sd15`]. The test in `tests.rs` checks that
//! `sd15()` converts to exactly what `StableDiffusionConfig::v1_5` builds.

use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig};
use candle_transformers::models::stable_diffusion::{unet_2d, vae};
use serde::{Deserialize, Serialize};

use super::DiffusionError;

/// The whole model. Both variants share the I/O contract of SD 1.5: RGB in [-1, 1], a
/// 4-channel latent at 1/8 of the image size, 77 CLIP tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub unet: UNetArchitecture,
    pub vae: VaeArchitecture,
    pub text: TextArchitecture,
}

/// Mirrors `unet_2d::UNet2DConditionModelConfig` (diffusers' `unet/config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetArchitecture {
    pub blocks: Vec<UNetBlock>,
    pub layers_per_block: usize,
    pub cross_attention_dim: usize,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub use_linear_projection: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub downsample_padding: usize,
    pub mid_block_scale_factor: f64,
    pub center_input_sample: bool,
    /// Attention slicing (memory for speed); `None` = off, `Some(0)` = candle's automatic size.
    pub sliced_attention_size: Option<usize>,
}

/// Mirrors `unet_2d::BlockConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetBlock {
    pub out_channels: usize,
    /// `None`: a plain ResNet block; `Some(n)`: cross-attention with `n` transformer layers.
    pub cross_attention_layers: Option<usize>,
    /// Number of attention heads (diffusers calls it `attention_head_dim`, candle too, but it
    /// is the head count: each head has `out_channels / attention_heads` channels).
    pub attention_heads: usize,
}

/// Mirrors `vae::AutoEncoderKLConfig`, plus the latent scaling factor of the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeArchitecture {
    /// One entry per encoder level; the encoder halves the size `len - 1` times, so SD's
    /// image/8 latent needs 4 entries.
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub latent_channels: usize,
    pub norm_num_groups: usize,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    /// Latents are `encode(x) * scaling_factor` (0.18215 for SD 1.5).
    pub scaling_factor: f64,
}

/// Mirrors `clip::text_model::ClipTextConfig` (QuickGelu activation, the only one it knows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextArchitecture {
    pub vocab_size: usize,
    pub embed_dim: usize,
    pub intermediate_size: usize,
    /// The token sequence length: prompts are truncated and padded to it (77).
    pub max_position_embeddings: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub projection_dim: usize,
}

/// The CLIP BPE vocabulary that `instant_clip_tokenizer` bundles; both variants use it.
const CLIP_VOCAB: usize = 49408;

/// The group count candle's UNet ResNet blocks use regardless of `norm_num_groups`.
const UNET_RESNET_GROUPS: usize = 32;

/// How many times the VAE halves the image size; the pipeline (and `target_size`) relies on
/// the SD factor of 8.
const VAE_FACTOR_LEVELS: usize = 3;

impl Architecture {
    /// Stable Diffusion 1.5 as published (runwayml/stable-diffusion-v1-5): the UNet and VAE
    /// of `StableDiffusionConfig::v1_5` and the CLIP ViT-L/14 text encoder.
    pub fn sd15() -> Self {
        let block = |out_channels, cross_attention_layers| UNetBlock {
            out_channels,
            cross_attention_layers,
            attention_heads: 8,
        };
        Architecture {
            unet: UNetArchitecture {
                blocks: vec![
                    block(320, Some(1)),
                    block(640, Some(1)),
                    block(1280, Some(1)),
                    block(1280, None),
                ],
                layers_per_block: 2,
                cross_attention_dim: 768,
                norm_num_groups: 32,
                norm_eps: 1e-5,
                use_linear_projection: false,
                flip_sin_to_cos: true,
                freq_shift: 0.,
                downsample_padding: 1,
                mid_block_scale_factor: 1.,
                center_input_sample: false,
                sliced_attention_size: None,
            },
            vae: VaeArchitecture {
                block_out_channels: vec![128, 256, 512, 512],
                layers_per_block: 2,
                latent_channels: 4,
                norm_num_groups: 32,
                use_quant_conv: true,
                use_post_quant_conv: true,
                scaling_factor: 0.18215,
            },
            text: TextArchitecture {
                vocab_size: CLIP_VOCAB,
                embed_dim: 768,
                intermediate_size: 3072,
                max_position_embeddings: 77,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                projection_dim: 768,
            },
        }
    }

    /// A few-hundred-kilobyte model with SD 1.5's I/O contract (same tokenizer, 77 tokens,
    /// 4 latent channels, /8 latent), for tests and demos with random weights. The token
    /// embedding (49408 x 32) is most of its size.
    pub fn tiny() -> Self {
        Architecture {
            unet: UNetArchitecture {
                // Cross-attention only in the half-resolution block (SD has it in the first
                // three of four): self-attention over every latent pixel is what costs most at
                // 512 px, and the tiny model is for fast tests. The mid block always has it.
                blocks: vec![
                    UNetBlock {
                        out_channels: 32,
                        cross_attention_layers: None,
                        attention_heads: 2,
                    },
                    UNetBlock {
                        out_channels: 64,
                        cross_attention_layers: Some(1),
                        attention_heads: 2,
                    },
                ],
                layers_per_block: 1,
                cross_attention_dim: 32,
                norm_num_groups: 8,
                ..Self::sd15().unet
            },
            vae: VaeArchitecture {
                block_out_channels: vec![8, 16, 16, 16],
                layers_per_block: 1,
                norm_num_groups: 4,
                ..Self::sd15().vae
            },
            text: TextArchitecture {
                vocab_size: CLIP_VOCAB,
                embed_dim: 32,
                intermediate_size: 64,
                max_position_embeddings: 77,
                num_hidden_layers: 2,
                num_attention_heads: 2,
                projection_dim: 32,
            },
        }
    }

    /// Checks what candle would otherwise panic on (empty block lists, zero heads: it
    /// indexes and divides without checking) or fail on deep inside model construction with
    /// an obscure message, and the pipeline's own assumptions (factor 8, tokenizer vocab).
    pub fn validate(&self) -> Result<(), DiffusionError> {
        let bad = |msg: String| Err(DiffusionError::BadWeights(format!("architecture: {msg}")));
        let (u, v, t) = (&self.unet, &self.vae, &self.text);
        if u.blocks.is_empty() {
            return bad("the UNet has no blocks".into());
        }
        if u.norm_num_groups == 0 || u.layers_per_block == 0 {
            return bad("the UNet needs norm_num_groups and layers_per_block above 0".into());
        }
        for (i, b) in u.blocks.iter().enumerate() {
            // candle's DownBlock2D / UpBlock2D build their ResNets with the default 32 groups,
            // whatever norm_num_groups says, so UNet widths must be multiples of 32 as well.
            if b.out_channels == 0
                || b.out_channels % u.norm_num_groups != 0
                || b.out_channels % UNET_RESNET_GROUPS != 0
            {
                return bad(format!(
                    "UNet block {i}: {} channels must be a positive multiple of norm_num_groups ({}) and of {UNET_RESNET_GROUPS}",
                    b.out_channels, u.norm_num_groups
                ));
            }
            if b.attention_heads == 0 || b.out_channels % b.attention_heads != 0 {
                return bad(format!(
                    "UNet block {i}: {} channels do not split into {} attention heads",
                    b.out_channels, b.attention_heads
                ));
            }
            if b.cross_attention_layers == Some(0) {
                return bad(format!("UNet block {i}: cross-attention with 0 transformer layers"));
            }
        }
        if u.cross_attention_dim != t.embed_dim {
            return bad(format!(
                "the UNet attends to {}-wide text states but the text encoder makes {}",
                u.cross_attention_dim, t.embed_dim
            ));
        }
        if v.block_out_channels.len() != VAE_FACTOR_LEVELS + 1 {
            return bad(format!(
                "the VAE needs {} blocks for SD's 1/8 latent, not {}",
                VAE_FACTOR_LEVELS + 1,
                v.block_out_channels.len()
            ));
        }
        if v.norm_num_groups == 0 || v.layers_per_block == 0 {
            return bad("the VAE needs norm_num_groups and layers_per_block above 0".into());
        }
        if let Some(c) = v
            .block_out_channels
            .iter()
            .find(|&&c| c == 0 || c % v.norm_num_groups != 0)
        {
            return bad(format!(
                "VAE: {c} channels are not a positive multiple of {} norm groups",
                v.norm_num_groups
            ));
        }
        if v.latent_channels != 4 {
            return bad(format!(
                "the UNet contract is 4 latent channels, not {}",
                v.latent_channels
            ));
        }
        if !(v.scaling_factor.is_finite() && v.scaling_factor > 0.) {
            return bad(format!("VAE scaling factor {} is not positive", v.scaling_factor));
        }
        if t.vocab_size != CLIP_VOCAB {
            return bad(format!(
                "the text encoder must use the {CLIP_VOCAB}-token CLIP vocabulary, not {}",
                t.vocab_size
            ));
        }
        if t.max_position_embeddings < 2 {
            return bad("the text encoder needs room for the start and end tokens".into());
        }
        if t.num_hidden_layers == 0 || t.num_attention_heads == 0 || t.embed_dim % t.num_attention_heads != 0 {
            return bad(format!(
                "text encoder: {} layers, {} heads for {} channels",
                t.num_hidden_layers, t.num_attention_heads, t.embed_dim
            ));
        }
        Ok(())
    }

    pub(crate) fn unet_config(&self) -> unet_2d::UNet2DConditionModelConfig {
        let u = &self.unet;
        unet_2d::UNet2DConditionModelConfig {
            center_input_sample: u.center_input_sample,
            flip_sin_to_cos: u.flip_sin_to_cos,
            freq_shift: u.freq_shift,
            blocks: u
                .blocks
                .iter()
                .map(|b| unet_2d::BlockConfig {
                    out_channels: b.out_channels,
                    use_cross_attn: b.cross_attention_layers,
                    attention_head_dim: b.attention_heads,
                })
                .collect(),
            layers_per_block: u.layers_per_block,
            downsample_padding: u.downsample_padding,
            mid_block_scale_factor: u.mid_block_scale_factor,
            norm_num_groups: u.norm_num_groups,
            norm_eps: u.norm_eps,
            cross_attention_dim: u.cross_attention_dim,
            sliced_attention_size: u.sliced_attention_size,
            use_linear_projection: u.use_linear_projection,
        }
    }

    pub(crate) fn vae_config(&self) -> vae::AutoEncoderKLConfig {
        let v = &self.vae;
        vae::AutoEncoderKLConfig {
            block_out_channels: v.block_out_channels.clone(),
            layers_per_block: v.layers_per_block,
            latent_channels: v.latent_channels,
            norm_num_groups: v.norm_num_groups,
            use_quant_conv: v.use_quant_conv,
            use_post_quant_conv: v.use_post_quant_conv,
        }
    }

    pub(crate) fn text_config(&self) -> ClipTextConfig {
        let t = &self.text;
        ClipTextConfig {
            vocab_size: t.vocab_size,
            embed_dim: t.embed_dim,
            activation: Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings,
            // Unused by the text model itself; padding is done by `text.rs` (end token).
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: t.projection_dim,
        }
    }
}
