//! Unit tests, on the CPU with the tiny random-weight model (they run in CI).

use candle_transformers::models::stable_diffusion::StableDiffusionConfig;

use super::*;

// ---- target_size ----

#[test]
fn target_size_of_a_landscape_phone_photo() {
    assert_eq!(target_size(4032, 3024), (512, 384));
}

#[test]
fn target_size_of_a_portrait_phone_photo() {
    assert_eq!(target_size(3024, 4032), (384, 512));
}

#[test]
fn target_size_scales_small_photos_up() {
    assert_eq!(target_size(80, 60), (512, 384));
    assert_eq!(target_size(10, 10), (512, 512));
    assert_eq!(target_size(1, 1), (512, 512));
}

#[test]
fn target_size_rounds_odd_sizes_to_multiples_of_8() {
    // 333 * 512 / 1000 = 170.5 -> 171 -> 168
    assert_eq!(target_size(1000, 333), (512, 168));
    // 1080 * 512 / 1920 = 288 exactly
    assert_eq!(target_size(1920, 1080), (512, 288));
    assert_eq!(target_size(1080, 1920), (288, 512));
}

#[test]
fn target_size_keeps_at_least_64() {
    assert_eq!(target_size(10_000, 100), (512, 64));
    assert_eq!(target_size(100, 10_000), (64, 512));
    assert_eq!(target_size(0, 0), (512, 512));
    assert_eq!(target_size(u32::MAX, 1), (512, 64));
}

#[test]
fn target_size_is_always_a_diffusion_size() {
    for w in (1..3000).step_by(37) {
        for h in (1..3000).step_by(41) {
            let (tw, th) = target_size(w, h);
            assert!(
                tw % 8 == 0 && th % 8 == 0 && tw >= 64 && th >= 64,
                "{w}x{h} -> {tw}x{th}"
            );
            assert_eq!(tw.max(th), 512, "{w}x{h} -> {tw}x{th}");
            // Aspect kept to within the rounding to 8 px.
            let (a, b) = (w as f64 / h as f64, tw as f64 / th as f64);
            assert!((a - b).abs() / a < 0.1 || tw.min(th) == 64, "{w}x{h} -> {tw}x{th}");
        }
    }
}

// ---- architecture ----

/// `StableDiffusionConfig::v1_5` keeps its UNet and VAE configs private, but prints them.
#[test]
fn sd15_is_candles_v1_5() {
    let candle = format!("{:?}", StableDiffusionConfig::v1_5(None, None, None));
    let sd15 = Architecture::sd15();
    let unet = format!("unet: {:?}", sd15.unet_config());
    let vae = format!("autoencoder: {:?}", sd15.vae_config());
    assert!(candle.contains(&unet), "{unet}\nnot in\n{candle}");
    assert!(candle.contains(&vae), "{vae}\nnot in\n{candle}");
    // clip::Config v1_5 and ClipTextConfig print the same fields in the same order.
    let text = format!("{:?}", sd15.text_config());
    let text_fields = text.split_once('{').map(|(_, rest)| rest).unwrap_or_default();
    assert!(
        candle.contains(&format!("clip: Config {{{text_fields}")),
        "{text}\nnot in\n{candle}"
    );
}

#[test]
fn architectures_round_trip_through_json_and_validate() {
    for arch in [Architecture::sd15(), Architecture::tiny()] {
        arch.validate().unwrap();
        let json = serde_json::to_string(&arch).unwrap();
        let back: Architecture = serde_json::from_str(&json).unwrap();
        assert_eq!(back, arch);
    }
}

#[test]
fn inconsistent_architectures_are_rejected() {
    let mut arch = Architecture::tiny();
    arch.unet.cross_attention_dim = 48;
    assert!(matches!(arch.validate(), Err(DiffusionError::BadWeights(_))));
    let mut arch = Architecture::tiny();
    arch.unet.blocks[0].attention_heads = 0;
    assert!(matches!(arch.validate(), Err(DiffusionError::BadWeights(_))));
    let mut arch = Architecture::tiny();
    arch.vae.block_out_channels.pop();
    assert!(matches!(arch.validate(), Err(DiffusionError::BadWeights(_))));
    let mut arch = Architecture::tiny();
    arch.unet.blocks.clear();
    assert!(matches!(arch.validate(), Err(DiffusionError::BadWeights(_))));
}

