//! Reading one setting: a lookup (the environment, or a map in tests), a name and a parser
//! from [`parse`](super::parse) give the value, its default when unset, or a
//! [`SettingsError`] naming it.

use std::time::Duration;

use super::error::SettingsError;
use super::secret::{SecretUrl, redact_url};
use crate::domain::BucketName;

/// 30 days: cached features.
pub(super) const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest time to live a setting may ask for (10 years). Redis takes it in
/// milliseconds as a signed 64-bit number: a larger value would make every write fail.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

pub(super) fn default_bucket(name: &str) -> BucketName {
    BucketName::parse(name).expect("the default bucket names are valid")
}

/// A setting with a default: unset (or empty) gives `default`, anything else must parse.
pub(super) fn setting<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, SettingsError> {
    match get(name) {
        None => Ok(default),
        Some(v) => parse(v.trim()).map_err(|expected| SettingsError::malformed(name, &v, &expected)),
    }
}

/// A setting without a default: unset (or empty) is `None`.
pub(super) fn optional<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, SettingsError> {
    match get(name) {
        None => Ok(None),
        Some(v) => parse(v.trim())
            .map(Some)
            .map_err(|expected| SettingsError::malformed(name, &v, &expected)),
    }
}

/// A URL setting without a default. Its value may hold credentials, so an error shows it
/// redacted, as the logs do.
pub(super) fn url_setting(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<SecretUrl>, SettingsError> {
    match get(name) {
        None => Ok(None),
        Some(v) => parse(v.trim())
            .map(|url| Some(SecretUrl::new(url)))
            .map_err(|expected| SettingsError::malformed(name, &redact_url(&v), &expected)),
    }
}
