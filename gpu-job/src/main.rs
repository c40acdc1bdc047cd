//! `gpu-job`: the long-running GPU worker that will run Stable Diffusion img2img on style
//! jobs from the Redis stream. The worker itself has not been built yet: this binary checks
//! its settings and then says so and exits non-zero, rather than pretending to consume jobs.

use anyhow::bail;
use ongi_shared::config::Settings;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    ongi_shared::telemetry::init_logging(settings.log_format);
    bail!("gpu-job: the style worker has not been built yet; no job is consumed")
}
