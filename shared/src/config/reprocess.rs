//! [`ReprocessSettings`]: batch reprocessing (`POST /batch/reprocess`, `ongi reprocess`; flow D).

use std::time::Duration;

use super::error::SettingsError;
use super::parse;
use super::read::setting;

/// Batch reprocessing (`POST /batch/reprocess`, `ongi reprocess`; flow D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReprocessSettings {
    /// `ONGI_REPROCESS_BUDGET_SECS` (50): a call stops starting photos after this long and
    /// saves its cursor, inside Cloud Scheduler's and Cloud Run's deadlines.
    pub budget: Duration,
    /// `ONGI_REPROCESS_CONCURRENCY` (8): photos processed at once by one call.
    pub concurrency: usize,
}

impl Default for ReprocessSettings {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(50),
            concurrency: 8,
        }
    }
}

impl ReprocessSettings {
    /// `ONGI_REPROCESS_BUDGET_SECS` and `ONGI_REPROCESS_CONCURRENCY`, each unset one at its default.
    pub(super) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let dr = Self::default();
        Ok(Self {
            // The same bound as a request's own `budget_secs`.
            budget: setting(get, "ONGI_REPROCESS_BUDGET_SECS", dr.budget, |v| {
                parse::seconds(v, 3600)
            })?,
            concurrency: setting(get, "ONGI_REPROCESS_CONCURRENCY", dr.concurrency, |v| {
                parse::count(v, 1..=1024)
            })?,
        })
    }
}
