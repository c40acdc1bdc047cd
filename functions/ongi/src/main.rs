//! The `ongi` binary: every function in one process (`ongi serve`), plus the CLI.
//! It only parses arguments and calls `ongi-shared`.
#![forbid(unsafe_code)]

mod cmd;

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ongi_shared::config::Settings;
use ongi_shared::functions::Functions;
use ongi_shared::http::{Application, shutdown};
use ongi_shared::model::loaded::Runtime;

#[derive(Parser)]
#[command(name = "ongi", version, about = "The AI back end of a photo-album app")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function in one process, on embedded defaults (no setting needed):
    /// photos from ./data/uploads, an in-process cache; Redis and GCS when configured.
    #[command(
        after_help = "Settings: `ongi serve --help` lists every environment variable with its default.",
        after_long_help = ongi_shared::config::settings_help()
    )]
    Serve {
        /// Port to listen on (overrides PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (overrides ONGI_HOST). Loopback by default: this process has no
        /// authentication of its own (on Cloud Run, IAM guards the functions).
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Do not try to download missing production models at start.
        #[arg(long)]
        no_fetch: bool,
    },
    /// Run every analysis on a folder of photos, with a progress bar, and write report.json
    /// and a self-contained report.html that shows the results as pictures.
    Analyze {
        /// The folder of photos (subfolders included).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Where report.json and report.html go (default: DIR/ongi-report).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The model folder.
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
    },
    /// Benchmarks, one JSON line per configuration.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Measured quality: Ongi's analyses and the anchor's on labelled photos, side by side.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Download (`fetch`) or check (`verify`) the model weights: SHA-256 pinned, licences listed.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Batch reprocessing, as POST /batch/reprocess, with a progress bar: prints the counts as JSON.
    Reprocess {
        #[command(flatten)]
        args: cmd::reprocess::ReprocessArgs,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// CLIP image-embedding throughput end to end and for inference alone, one JSON line per
    /// configuration (needs ORT_DYLIB_PATH).
    Embed {
        /// A folder of photos (JPEG, PNG, WebP; HEIC and AVIF with the `heif` feature).
        #[arg(long, value_name = "DIR")]
        photos: PathBuf,
        /// The model folder holding clip-vit-b32-visual.onnx.
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        /// Rounds per configuration (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Inference batch sizes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 16])]
        batch_sizes: Vec<usize>,
        /// ONNX Runtime intra-op threads (default: every CPU).
        #[arg(long)]
        threads: Option<usize>,
        /// Use only the first N photos.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Faces per second: decode, detection, alignment and embedding, photo by photo.
    Faces {
        #[arg(long, value_name = "DIR")]
        photos: PathBuf,
        /// The model folder with the face detector and face-embed-sface.onnx.
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        /// `yunet` or `mtcnn`.
        #[arg(long, default_value = "mtcnn")]
        detector: String,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// A 30-photo album from upload to the six album results, p50 and p95 over the rounds
    /// (the photos folder needs 30 JPEGs or more; ORT_DYLIB_PATH, ONGI_FACE_DETECTOR apply).
    Album {
        #[arg(long, value_name = "DIR")]
        photos: PathBuf,
        /// The model folder (CLIP, the aesthetic head, face models).
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// Start-to-ready of `ongi serve` with a model folder: process start until /readyz is 200.
    Ready {
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Also time this `ongi` binary (an older build), in alternate rounds, and compare.
        #[arg(long, value_name = "FILE")]
        baseline_bin: Option<PathBuf>,
    },
    /// Concurrent album calls against a real `ongi serve` (started here, loopback) for a fixed
    /// time: calls by status, p50/p99, the server's memory, a per-second timeline. Exits 1
    /// if a call got a 5xx that was not shed load (503 with Retry-After) or no answer.
    Load {
        /// A folder of 30 or more JPEGs; the pool is made from them.
        #[arg(long, value_name = "DIR")]
        photos: PathBuf,
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        /// Clients sending calls at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Photos per album call.
        #[arg(long, default_value_t = 30)]
        album: usize,
        /// Photos in the bucket that albums are drawn from.
        #[arg(long, default_value_t = 300)]
        pool: usize,
        /// Album routes to call, in turn.
        #[arg(long, value_delimiter = ',', default_values_t = ["embedding", "categories", "duplicates", "quality", "score"].map(String::from))]
        routes: Vec<String>,
        /// ONGI_MAX_IN_FLIGHT for the server (default: the server's own).
        #[arg(long)]
        max_in_flight: Option<usize>,
        /// Keep the server's log in this file.
        #[arg(long, value_name = "FILE")]
        server_log: Option<PathBuf>,
        /// First run the same load against this `ongi` binary (an older build), then against
        /// this one, and compare.
        #[arg(long, value_name = "FILE")]
        baseline_bin: Option<PathBuf>,
        /// Every client sends the same sequence of albums (several app servers asking about
        /// the same new album at once), instead of albums of its own.
        #[arg(long)]
        same_albums: bool,
        /// Each client stops after this many calls (or at --duration, whichever comes
        /// first): with a few calls per client the run measures the calls that compute new
        /// photos, not the cache hits that follow once the pool is computed.
        #[arg(long, value_name = "N")]
        calls_per_client: Option<usize>,
    },
    /// Every hostile input at once against a real `ongi serve` (started here, loopback,
    /// default settings): memory, metadata, scan and AVIF bombs on every route, trickled
    /// bodies and distinct texts, while a well-behaved caller's album calls are timed; the
    /// server's memory sampled. One JSON line per server. Exits 1 if the server died, a bomb
    /// was not refused in invalid_images, its resident memory went over --max-rss-mib, or the
    /// well-behaved caller's p99 went over --max-p99-s. The style route is included when
    /// REDIS_URL is set.
    Hostile {
        /// The model folder (CLIP, the aesthetic head, face models; ONGI_FACE_DETECTOR applies).
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        /// Calls sent at once to each album route, each carrying every bomb.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Copies of each bomb (distinct bytes) in every album call.
        #[arg(long, default_value_t = 8)]
        variants: usize,
        /// The resident memory the server must stay under, in MiB.
        #[arg(long, default_value_t = 1536.0)]
        max_rss_mib: f64,
        /// Serve with this `ongi` binary instead of this one (e.g. an older build).
        #[arg(long, value_name = "FILE")]
        server_bin: Option<PathBuf>,
        /// First attack this `ongi` binary the same way, in the same run (the "before").
        #[arg(long, value_name = "FILE")]
        baseline_bin: Option<PathBuf>,
        /// Run each server in a cgroup with this much memory, as a container (needs root).
        #[arg(long, value_name = "MIB")]
        memory_limit_mib: Option<u64>,
        /// Connections trickling bodies that declare almost 1 MiB, during the attack.
        #[arg(long, default_value_t = 1000)]
        body_flood: usize,
        /// Callers sending distinct texts to /api/text/embedding, during the attack.
        #[arg(long, default_value_t = 2)]
        text_flood: usize,
        /// The well-behaved caller's album calls must keep this p99, in seconds.
        #[arg(long, default_value_t = 2.0)]
        max_p99_s: f64,
    },
    /// Time to group N photos' features into duplicate groups (synthetic features).
    Duplicates {
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Blur detection on the blur ladder: Ongi and the anchor's Laplacian test, per sigma.
    Blur {
        /// The folder written by eval/make_eval_sets.py.
        #[arg(long, value_name = "DIR", default_value = "/var/tmp/eval")]
        data: PathBuf,
    },
    /// Duplicate grouping on the augmentation set: pairwise precision and recall.
    Duplicates {
        #[arg(long, value_name = "DIR", default_value = "/var/tmp/eval")]
        data: PathBuf,
    },
    /// People clustering on synthetic albums: Ongi and the anchor's DBSCAN, ARI and purity.
    People {
        /// Identities per album (default: two settings, 20 and 100).
        #[arg(long)]
        identities: Option<usize>,
        /// First of the three seeds (S, S+1, S+2).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download the production weights into the model folder (valid files are kept), and
    /// write the manifest there as manifest.toml; and the ONNX Runtime library (the pinned
    /// official release archive, SHA-256 checked) when none is found on this machine and the
    /// functions' files are fetched. By default only the functions' files: the GPU worker's
    /// Stable Diffusion 1.5 (2.1 GB) only with `--for gpu-job` or `--for all`.
    Fetch {
        /// The model folder.
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        /// Fetch the files listed in this manifest instead of the embedded production manifest
        /// (and not the ONNX Runtime library).
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Whose files: the functions' (CLIP, the aesthetic head, the face models; what `ongi
        /// serve` loads), the GPU worker's (Stable Diffusion 1.5, in sd15/), or all.
        #[arg(long = "for", value_enum, value_name = "WHO", default_value_t = cmd::models::For::Functions)]
        for_: cmd::models::For,
    },
    /// Check the model folder against its manifest.toml (or the production manifest): size,
    /// SHA-256 and licence of every file. By default the functions' files only (the GPU
    /// worker's image checks its own with `--for gpu-job`).
    Verify {
        /// The model folder.
        #[arg(long, value_name = "DIR", env = "ONGI_MODEL_DIR", default_value = "models")]
        models: PathBuf,
        /// Whose files: the functions' (CLIP, the aesthetic head, the face models), the GPU
        /// worker's (Stable Diffusion 1.5, in sd15/), or all.
        #[arg(long = "for", value_enum, value_name = "WHO", default_value_t = cmd::models::For::Functions)]
        for_: cmd::models::For,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { port, host, no_fetch } => serve(port, host, no_fetch).await,
        Command::Analyze { dir, out, models } => {
            cmd::analyze::run(cmd::analyze::AnalyzeOptions { dir, out, models }).await
        }
        Command::Bench {
            command:
                BenchCommand::Embed {
                    photos,
                    models,
                    rounds,
                    batch_sizes,
                    threads,
                    limit,
                },
        } => {
            cmd::bench::embed(cmd::bench::BenchOptions {
                photos,
                models,
                rounds: rounds.max(1),
                batch_sizes,
                threads: threads.unwrap_or_else(ongi_shared::model::runtime::intra_op_threads),
                limit,
            })
            .await
        }
        Command::Bench {
            command: BenchCommand::Duplicates { n, rounds },
        } => cmd::bench::duplicates(n, rounds),
        Command::Bench {
            command: BenchCommand::Album { photos, models, rounds },
        } => cmd::bench::album::album(&photos, &models, rounds.max(1)).await,
        Command::Bench {
            command:
                BenchCommand::Load {
                    photos,
                    models,
                    concurrency,
                    duration,
                    album,
                    pool,
                    routes,
                    max_in_flight,
                    server_log,
                    baseline_bin,
                    same_albums,
                    calls_per_client,
                },
        } => {
            if !(duration.is_finite() && duration > 0.0) {
                anyhow::bail!("--duration {duration}: expected a positive number of seconds");
            }
            cmd::bench::load::run(cmd::bench::load::LoadOptions {
                photos,
                models,
                concurrency,
                duration: std::time::Duration::from_secs_f64(duration),
                album,
                pool,
                routes,
                max_in_flight,
                server_log,
                baseline_bin,
                same_albums,
                calls_per_client,
            })
            .await
        }
        Command::Bench {
            command:
                BenchCommand::Hostile {
                    models,
                    concurrency,
                    variants,
                    max_rss_mib,
                    server_bin,
                    baseline_bin,
                    memory_limit_mib,
                    body_flood,
                    text_flood,
                    max_p99_s,
                },
        } => {
            cmd::bench::hostile::run(cmd::bench::hostile::HostileOptions {
                models,
                concurrency,
                variants,
                max_rss_mib,
                server_bin,
                baseline_bin,
                memory_limit_mib,
                body_flood,
                text_flood,
                max_p99_s,
            })
            .await
        }
        Command::Bench {
            command:
                BenchCommand::Ready {
                    models,
                    rounds,
                    baseline_bin,
                },
        } => cmd::bench::album::ready(&models, rounds.max(1), baseline_bin.as_deref()),
        Command::Bench {
            command:
                BenchCommand::Faces {
                    photos,
                    models,
                    detector,
                    limit,
                },
        } => {
            let detector = match detector.as_str() {
                "yunet" => ongi_shared::config::FaceDetector::Yunet,
                "mtcnn" => ongi_shared::config::FaceDetector::Mtcnn,
                other => anyhow::bail!("--detector {other}: expected yunet or mtcnn"),
            };
            cmd::bench::faces(&photos, &models, detector, limit)
        }
        Command::Eval { command } => match command {
            EvalCommand::Blur { data } => cmd::eval::blur(&data),
            EvalCommand::Duplicates { data } => cmd::eval::duplicates(&data),
            EvalCommand::People { identities, seed } => cmd::eval::people::run(identities, seed),
        },
        Command::Reprocess { args } => cmd::reprocess::run(args).await,
        Command::Models { command } => match command {
            ModelsCommand::Fetch { models, manifest, for_ } => {
                let mut settings = Settings::from_env()?;
                settings.model_dir = models;
                cmd::models::fetch(&settings, manifest.as_deref(), for_).await
            }
            ModelsCommand::Verify { models, for_ } => cmd::models::verify(&models, for_),
        },
    }
}

async fn serve(port: Option<u16>, host: IpAddr, no_fetch: bool) -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    if let Some(port) = port {
        settings.port = port;
    }
    if std::env::var_os("ONGI_HOST").is_none() {
        settings.host = host;
    }
    // This process has no authentication of its own: beyond loopback it needs a token.
    if !settings.host.is_loopback() && settings.api_token.is_none() {
        anyhow::bail!(
            "ongi serve on {} needs ONGI_API_TOKEN (a secret of 16+ characters, sent as `Authorization: Bearer …`): \
             without it anyone who can reach the port could use it; bind 127.0.0.1 or set the token",
            settings.host
        );
    }
    ongi_shared::telemetry::init_logging_for(settings.log_format, settings.google_cloud_project.clone());
    tracing::info!(settings = ?settings, "starting ongi serve");
    // First run: fetch what is missing (SHA-256 checked, with progress); offline, this fails
    // in one line and the service starts with what needs no model. Files already in the
    // folder are never touched here, even ones that do not match their pin.
    if !no_fetch {
        if models_missing(&settings.model_dir)
            && let Err(e) = cmd::models::fetch_missing(&settings.model_dir).await
        {
            eprintln!("ongi serve: models not fetched: {e}");
        }
        // The ONNX Runtime library too, when it is nowhere on this machine.
        if let Err(e) = cmd::models::fetch_runtime(&settings).await {
            eprintln!("ongi serve: {e}");
        }
    }
    let app = Application::build(settings, Functions::all())
        .await
        .context("cannot start ongi serve")?;
    report_runtime(&app);
    report_missing_parts(&app);
    println!("ongi serve: listening on http://{}", app.address());
    app.run_until_stopped(shutdown::signal()).await?;
    Ok(())
}

/// Whether the model folder lacks a required model of the functions (or does not exist); the
/// GPU worker's files are not this process's. Hashes come from the folder's stamps while the
/// files are unchanged.
fn models_missing(dir: &std::path::Path) -> bool {
    use ongi_shared::model::manifest::{Hashing, Manifest, ModelStatus, UsedBy};
    match Manifest::load(dir) {
        Ok(manifest) => manifest
            .only_used_by(UsedBy::Functions)
            .verify_with(dir, Hashing::Stamped)
            .checks
            .iter()
            .any(|c| c.required && c.status == ModelStatus::Missing),
        Err(_) => true,
    }
}

/// One line naming the ONNX Runtime library and where it was found.
fn report_runtime(app: &Application) {
    if let Runtime::Loaded { library, found_in } = &app.state().models.runtime {
        println!("ongi serve: ONNX Runtime from {found_in}: {}", library.display());
    }
}

/// One line saying what this first run lacks and how to add it.
fn report_missing_parts(app: &Application) {
    if let Some(line) = app.state().models.missing_line() {
        tracing::warn!("{line}");
        eprintln!("ongi serve: {line}");
    }
}
