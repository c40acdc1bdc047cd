//! Points in time as the APIs write them: RFC 3339 (`2026-11-25T12:00:00Z`), which is what
//! Cloud Storage reports for `updated` and what `/batch/reprocess` takes as `since`.
//! Parsing and formatting are the official client's own ([`google_cloud_wkt::Timestamp`]).

use std::time::SystemTime;

use google_cloud_wkt::Timestamp;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an RFC 3339 time such as 2026-11-25T12:00:00Z")]
pub struct InvalidTime(pub String);

/// An RFC 3339 time with an explicit offset (`Z` or `+09:00`), at or after 1970.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, InvalidTime> {
    let invalid = || InvalidTime(text.chars().take(64).collect());
    let ts = Timestamp::try_from(text).map_err(|_| invalid())?;
    SystemTime::try_from(ts).map_err(|_| invalid())
}

/// The RFC 3339 form of a time (UTC, `Z`), for answers and logs.
pub fn format_rfc3339(time: SystemTime) -> String {
    Timestamp::try_from(time)
        .ok()
        .and_then(|ts| serde_json::to_value(ts).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn parses_offsets_and_fractions_and_refuses_the_rest() {
        let t = parse_rfc3339("2025-05-16T09:46:12.500Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_747_388_772_500));
        assert_eq!(parse_rfc3339("2025-05-16T18:46:12.5+09:00").unwrap(), t);
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_secs(1_747_388_772)),
            "2025-05-16T09:46:12Z"
        );
        for bad in ["", "yesterday", "1747388772", "2025-05-16", "2025-05-16T09:46:12"] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
