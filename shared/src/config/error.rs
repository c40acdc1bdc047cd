//! The one error of settings: a malformed or missing setting, named in one line.

/// One malformed or missing setting. `Display` is the one line printed at start-up.
#[derive(Debug, thiserror::Error)]
#[error("setting {name} {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

impl SettingsError {
    pub(super) fn malformed(name: &'static str, value: &str, expected: &str) -> Self {
        let shown: String = value.chars().take(80).collect();
        Self {
            name,
            problem: format!("is malformed: {shown:?} (expected {expected})"),
        }
    }

    pub(super) fn missing(name: &'static str, why: &str) -> Self {
        Self {
            name,
            problem: format!("is missing: {why}"),
        }
    }
}
