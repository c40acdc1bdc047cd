//! Cloud Storage bucket names, by the rules GCS enforces for names without dots
//! (3–63 characters of lowercase letters, digits, `-` and `_`, starting and ending with a
//! letter or digit), plus dotted names of up to 222 characters whose parts follow the same rules.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a bucket name of 3-63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit")]
pub struct InvalidBucketName;

impl BucketName {
    pub fn parse(name: &str) -> Result<Self, InvalidBucketName> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.';
        let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let max = if name.contains('.') { 222 } else { 63 };
        let valid = (3..=max).contains(&name.len())
            && name.chars().all(ok_char)
            && ok_edge(name.chars().next())
            && ok_edge(name.chars().last())
            && !name.contains("..")
            && name.split('.').all(|part| !part.is_empty() && part.len() <= 63);
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidBucketName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_gcs_names_and_refuses_the_rest() {
        for ok in ["uploads", "my-bucket_01", "a.b.c", "abc"] {
            assert!(BucketName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Uploads",
            "-abc",
            "abc-",
            "a..b",
            "a/b",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
    }
}
