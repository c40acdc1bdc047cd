//! `gpu-job`: the style worker. `gpu-job` (or `gpu-job run`) consumes style jobs from the
//! Redis stream until SIGTERM; `gpu-job tiny-model DIR` writes a tiny random-weight model
//! folder to try the flow on a laptop; `gpu-job bench` times img2img.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gpu_job::diffusion::{Architecture, DeviceChoice, Img2ImgParams, StyleModel, write_random_model};
use gpu_job::service;
use ongi_shared::config::{Settings, StyleDevice};

#[derive(Parser)]
#[command(
    name = "gpu-job",
    about = "Ongi's style worker: Stable Diffusion 1.5 img2img on jobs from Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume style jobs until SIGTERM (the default). Settings from the environment.
    Run,
    /// Write a tiny random-weight Stable Diffusion folder (unet, vae, text encoder). Its
    /// pictures are noise: it exists to run the whole flow without the 2 GB of real weights.
    TinyModel {
        /// Where to write it, e.g. models/sd15.
        dir: PathBuf,
    },
    /// Seconds per img2img with random weights: the full SD 1.5 architecture by default.
    Bench {
        #[arg(long, default_value_t = 512)]
        size: u32,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The tiny test architecture instead of SD 1.5.
        #[arg(long)]
        tiny: bool,
    },
}

fn device(settings: &Settings) -> DeviceChoice {
    match settings.style.device {
        StyleDevice::Auto => DeviceChoice::Auto,
        StyleDevice::Cpu => DeviceChoice::Cpu,
        StyleDevice::Cuda => DeviceChoice::Cuda,
    }
}

fn settings_and_logging() -> anyhow::Result<Settings> {
    let settings = Settings::from_env()?;
    ongi_shared::telemetry::init_logging(settings.log_format);
    Ok(settings)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        // Writing a model folder reads no setting: it must work in an environment set up
        // for something else (CI exports the emulators' hosts without a project).
        Command::TinyModel { dir } => {
            write_random_model(&dir, &Architecture::tiny(), 0)?;
            println!("wrote a tiny random-weight model to {}", dir.display());
        }
        Command::Run => {
            let settings = settings_and_logging()?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(service::run_from_settings(settings))?;
        }
        Command::Bench {
            size,
            steps,
            rounds,
            tiny,
        } => {
            if rounds == 0 {
                bail!("--rounds must be at least 1");
            }
            let settings = settings_and_logging()?;
            let arch = if tiny {
                Architecture::tiny()
            } else {
                Architecture::sd15()
            };
            let loading = Instant::now();
            let model = StyleModel::random(&arch, device(&settings), 0)?;
            let load_s = loading.elapsed().as_secs_f64();
            let input =
                image::RgbImage::from_fn(size, size, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
            let params = Img2ImgParams {
                strength: 1.0,
                steps,
                guidance_scale: 7.5,
                seed: 1,
            };
            let mut seconds = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let started = Instant::now();
                model.img2img(&input, "a photo, ghibli style", "blurry", &params, &mut |_, _| false)?;
                seconds.push(started.elapsed().as_secs_f64());
            }
            let mut sorted = seconds.clone();
            sorted.sort_by(f64::total_cmp);
            let line = serde_json::json!({
                "config": if tiny { "tiny" } else { "sd15-random" },
                "device": model.device_label(),
                "size": size,
                "steps": steps,
                "strength": 1.0,
                "guidance_scale": 7.5,
                "load_s": load_s,
                "seconds": seconds,
                "median_s": sorted[sorted.len() / 2],
            });
            println!("{line}");
        }
    }
    Ok(())
}
