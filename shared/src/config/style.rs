//! [`StyleSettings`]: the style queue and its worker (flow C).

use std::time::Duration;

use super::error::SettingsError;
use super::parse;
use super::read::{MAX_TTL_SECS, setting};

/// The style queue and its worker (flow C).
#[derive(Debug, Clone, PartialEq)]
pub struct StyleSettings {
    /// `ONGI_STYLE_MAX_QUEUE` (50): jobs queued or running beyond which a submission gets 429.
    pub max_queue: u64,
    /// `ONGI_STYLE_MAX_ATTEMPTS` (3): failed or abandoned attempts before the dead-letter stream.
    pub max_attempts: u32,
    /// `ONGI_STYLE_RECLAIM_SECS` (120): a claimed job without a heartbeat for this long is
    /// taken over by another worker (its worker is presumed dead).
    pub reclaim_after: Duration,
    /// `ONGI_STYLE_JOB_TTL_SECS` (7 days): how long a finished job (and its idempotency key) is kept.
    pub job_ttl: Duration,
    /// `ONGI_STYLE_DEVICE`: `auto` (CUDA when built with it and a GPU answers), `cpu` or `cuda`.
    pub device: StyleDevice,
    /// `ONGI_STYLE_STALL_SECS` (300): the worker's `/healthz` answers 503 once its job loop
    /// has made no progress (no claim, no denoising step) for this long, so the managed
    /// instance group's autohealing replaces a stuck worker.
    pub stall_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StyleDevice {
    Auto,
    Cpu,
    Cuda,
}

impl Default for StyleSettings {
    fn default() -> Self {
        Self {
            max_queue: 50,
            max_attempts: 3,
            reclaim_after: Duration::from_secs(120),
            job_ttl: Duration::from_secs(7 * 24 * 3600),
            device: StyleDevice::Auto,
            stall_after: Duration::from_secs(300),
        }
    }
}

impl StyleSettings {
    /// The `ONGI_STYLE_*` settings, each unset one at its default.
    pub(super) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let ds = Self::default();
        Ok(Self {
            max_queue: setting(get, "ONGI_STYLE_MAX_QUEUE", ds.max_queue, |v| {
                parse::count(v, 1..=1_000_000)
            })?,
            max_attempts: setting(get, "ONGI_STYLE_MAX_ATTEMPTS", ds.max_attempts, |v| {
                parse::count(v, 1..=100)
            })?,
            reclaim_after: setting(get, "ONGI_STYLE_RECLAIM_SECS", ds.reclaim_after, |v| {
                parse::seconds(v, 7 * 24 * 3600)
            })?,
            job_ttl: setting(get, "ONGI_STYLE_JOB_TTL_SECS", ds.job_ttl, |v| {
                parse::seconds(v, MAX_TTL_SECS)
            })?,
            device: setting(get, "ONGI_STYLE_DEVICE", ds.device, |v| {
                parse::one_of(
                    v,
                    &[
                        ("auto", StyleDevice::Auto),
                        ("cpu", StyleDevice::Cpu),
                        ("cuda", StyleDevice::Cuda),
                    ],
                )
            })?,
            stall_after: setting(get, "ONGI_STYLE_STALL_SECS", ds.stall_after, |v| {
                parse::seconds(v, 24 * 3600)
            })?,
        })
    }
}
