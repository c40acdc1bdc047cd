//! Unit tests, on the CPU with the tiny random-weight model (they run in CI).

use std::path::Path;
use std::sync::OnceLock;

use candle_transformers::models::stable_diffusion::StableDiffusionConfig;
use image::RgbImage;

use super::weights::{ARCHITECTURE_FILE, TEXT_FILE, UNET_FILE, VAE_FILE};
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
    assert!(matches!(
        StyleModel::random(&arch, DeviceChoice::Cpu, 0),
        Err(DiffusionError::BadWeights(_))
    ));
}

// ---- the tiny model, written to a folder and loaded back ----

const SEED: u64 = 7;

fn write_tiny(dir: &Path) {
    write_random_model(dir, &Architecture::tiny(), SEED).unwrap();
}

/// One tiny model for all tests (it is Sync); the folder can go once loaded, since loading
/// copies the tensors into memory.
fn tiny_model() -> &'static StyleModel {
    static MODEL: OnceLock<StyleModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        StyleModel::load(dir.path(), DeviceChoice::Cpu).unwrap()
    })
}

/// 80x60: not square and not a multiple of 64 (nor of 8, before resizing).
fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            (255 - (x * 127 / w + y * 127 / h)) as u8,
        ])
    })
}

fn params(seed: u64) -> Img2ImgParams {
    Img2ImgParams {
        strength: 0.75,
        steps: 4,
        guidance_scale: 7.5,
        seed,
    }
}

fn run(model: &StyleModel, input: &RgbImage, params: &Img2ImgParams) -> RgbImage {
    model
        .img2img(input, "a watercolor painting", "blurry", params, &mut |_, _| false)
        .unwrap()
}

fn max_abs_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn written_model_folder_has_the_four_files_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path());
    for file in [UNET_FILE, VAE_FILE, TEXT_FILE, ARCHITECTURE_FILE] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    let model = StyleModel::load(dir.path(), DeviceChoice::Cpu).unwrap();
    assert_eq!(model.architecture(), &Architecture::tiny());
    assert_eq!(model.device_label(), "cpu f32");
}

/// The full path on a small, odd photo: resized up to 512x384 (the tiny model is cheap per
/// pixel, but this is still the slowest test, so it runs once).
#[test]
fn img2img_of_a_small_photo_returns_the_target_size_and_a_real_image() {
    let out = run(tiny_model(), &gradient(80, 60), &params(SEED));
    assert_eq!(out.dimensions(), target_size(80, 60));
    let raw = out.as_raw();
    let (lo, hi) = (raw.iter().min().unwrap(), raw.iter().max().unwrap());
    assert!(hi - lo > 8, "output nearly constant: {lo}..{hi}");
}

/// At the smallest size (64x64, no resize), to keep the three runs quick; the resize in
/// front is deterministic in itself.
#[test]
fn img2img_is_deterministic_for_a_seed_and_varies_with_it() {
    let model = tiny_model();
    let input = gradient(64, 64);
    let run = |seed| {
        model
            .img2img_exact(&input, "a watercolor painting", "blurry", &params(seed), &mut |_, _| {
                false
            })
            .unwrap()
    };
    let (a, b, c) = (run(SEED), run(SEED), run(SEED + 1));
    assert!(
        max_abs_diff(&a, &b) <= 1,
        "same seed, max diff {}",
        max_abs_diff(&a, &b)
    );
    assert!(max_abs_diff(&a, &c) > 1, "another seed gave the same image");
}

#[test]
fn random_model_equals_the_written_one() {
    let random = StyleModel::random(&Architecture::tiny(), DeviceChoice::Cpu, SEED).unwrap();
    let input = gradient(64, 64);
    let p = Img2ImgParams {
        guidance_scale: 1.0, // also covers the unguided, single-batch path
        ..params(3)
    };
    let a = random
        .img2img_exact(&input, "a cat", "", &p, &mut |_, _| false)
        .unwrap();
    let b = tiny_model()
        .img2img_exact(&input, "a cat", "", &p, &mut |_, _| false)
        .unwrap();
    assert_eq!(a.dimensions(), (64, 64));
    assert!(max_abs_diff(&a, &b) <= 1);
}

#[test]
fn cancelling_after_the_first_step_stops_there() {
    let model = tiny_model();
    let mut calls = Vec::new();
    let result = model.img2img_exact(&gradient(64, 64), "x", "", &params(SEED), &mut |done, total| {
        calls.push((done, total));
        done == 1
    });
    assert!(matches!(result, Err(DiffusionError::Cancelled)), "{result:?}");
    assert_eq!(calls, [(1, 3)]);
}

#[test]
fn on_step_counts_every_denoising_step() {
    let mut calls = Vec::new();
    let p = Img2ImgParams {
        steps: 5,
        strength: 0.5,
        ..params(SEED)
    };
    assert_eq!(p.denoising_steps(), 2);
    tiny_model()
        .img2img_exact(&gradient(64, 64), "x", "", &p, &mut |done, total| {
            calls.push((done, total));
            false
        })
        .unwrap();
    assert_eq!(calls, [(1, 2), (2, 2)]);
}

#[test]
fn a_missing_file_is_named() {
    for file in [UNET_FILE, VAE_FILE, TEXT_FILE] {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        std::fs::remove_file(dir.path().join(file)).unwrap();
        match StyleModel::load(dir.path(), DeviceChoice::Cpu) {
            Err(e @ DiffusionError::MissingWeights { .. }) => {
                let DiffusionError::MissingWeights { path } = &e else {
                    unreachable!()
                };
                assert_eq!(path, &dir.path().join(file));
                let message = e.to_string();
                assert!(
                    message.contains(file) && message.contains("gpu-job tiny-model"),
                    "{message}"
                );
            }
            other => panic!("{file}: {:?}", other.err()),
        }
    }
}

#[test]
fn an_empty_folder_is_sd15_missing_its_unet() {
    let dir = tempfile::tempdir().unwrap();
    let err = StyleModel::load(dir.path(), DeviceChoice::Cpu).err();
    assert!(
        matches!(&err, Some(DiffusionError::MissingWeights { path }) if path.ends_with(UNET_FILE)),
        "{err:?}"
    );
}

#[test]
fn broken_files_are_bad_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path());
    std::fs::write(dir.path().join(UNET_FILE), b"not safetensors").unwrap();
    let err = StyleModel::load(dir.path(), DeviceChoice::Cpu).err();
    assert!(
        matches!(&err, Some(DiffusionError::BadWeights(m)) if m.contains(UNET_FILE)),
        "{err:?}"
    );

    // Weights that do not fit the architecture: the SD 1.5 shapes are asked of tiny files.
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path());
    std::fs::remove_file(dir.path().join(ARCHITECTURE_FILE)).unwrap();
    let err = StyleModel::load(dir.path(), DeviceChoice::Cpu).err();
    assert!(matches!(&err, Some(DiffusionError::BadWeights(_))), "{err:?}");

    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path());
    std::fs::write(dir.path().join(ARCHITECTURE_FILE), b"{\"unet\": 1}").unwrap();
    let err = StyleModel::load(dir.path(), DeviceChoice::Cpu).err();
    assert!(
        matches!(&err, Some(DiffusionError::BadWeights(m)) if m.contains(ARCHITECTURE_FILE)),
        "{err:?}"
    );
}

#[test]
fn bad_params_are_bad_input_and_run_nothing() {
    let model = tiny_model();
    let input = gradient(80, 60);
    let cases = [
        Img2ImgParams {
            strength: 0.,
            ..params(0)
        },
        Img2ImgParams {
            strength: 1.5,
            ..params(0)
        },
        Img2ImgParams {
            strength: f64::NAN,
            ..params(0)
        },
        Img2ImgParams { steps: 0, ..params(0) },
        Img2ImgParams {
            steps: 101,
            ..params(0)
        },
        Img2ImgParams {
            guidance_scale: 0.5,
            ..params(0)
        },
        Img2ImgParams {
            guidance_scale: f64::INFINITY,
            ..params(0)
        },
        Img2ImgParams {
            steps: 1,
            strength: 0.5,
            ..params(0)
        },
    ];
    for p in cases {
        let mut called = false;
        let result = model.img2img(&input, "x", "", &p, &mut |_, _| {
            called = true;
            false
        });
        assert!(matches!(result, Err(DiffusionError::BadInput(_))), "{p:?}: {result:?}");
        assert!(!called);
    }
    let ok = Img2ImgParams {
        steps: 1,
        strength: 1.0,
        ..params(0)
    };
    ok.validate().unwrap();
    assert_eq!(ok.denoising_steps(), 1);
}

#[test]
fn bad_images_are_bad_input() {
    let model = tiny_model();
    let p = params(0);
    let empty = RgbImage::new(0, 10);
    assert!(matches!(
        model.img2img(&empty, "x", "", &p, &mut |_, _| false),
        Err(DiffusionError::BadInput(_))
    ));
    for (w, h) in [(60, 64), (64, 56), (72, 32)] {
        assert!(matches!(
            model.img2img_exact(&gradient(w, h), "x", "", &p, &mut |_, _| false),
            Err(DiffusionError::BadInput(_))
        ));
    }
}

#[test]
fn prompts_are_tokenised_the_sd15_way() {
    let text = &tiny_model().text;
    let ids = text.token_ids("Hi there");
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[..4], [49406, 1883, 997, 49407]);
    assert!(ids[4..].iter().all(|&id| id == 49407));
    let long = text.token_ids(&"cat ".repeat(200));
    assert_eq!(long.len(), 77);
    assert_eq!((long[0], long[75], long[76]), (49406, long[1], 49407));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_device_error() {
    let err = StyleModel::random(&Architecture::tiny(), DeviceChoice::Cuda, 0).err();
    assert!(
        matches!(&err, Some(DiffusionError::Device(m)) if m.contains("cuda")),
        "{err:?}"
    );
    // Auto falls back to the CPU.
    let model = StyleModel::random(&Architecture::tiny(), DeviceChoice::Auto, 0).unwrap();
    assert_eq!(model.device_label(), "cpu f32");
}

#[test]
fn bench_times_each_round() {
    let times = bench_img2img(tiny_model(), (64, 64), 4, 2).unwrap();
    assert_eq!(times.len(), 2);
    assert!(times.iter().all(|t| *t > 0.));
}

#[test]
fn the_model_and_its_errors_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StyleModel>();
    // Errors cross threads too (the worker reports them from its job tasks).
    assert_send_sync::<DiffusionError>();
}
