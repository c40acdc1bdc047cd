//! Values that may hold credentials: [`Secret`] and [`SecretUrl`] print without them, so
//! [`Settings`](super::Settings) can be logged whole.

use std::fmt;

/// A secret string whose `Debug` never shows the value, so `Settings` can be logged whole.
#[derive(Clone)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A URL that may carry credentials: a user and password before its host
/// (`redis://:AUTH@host:6379`, which is how Terraform hands Memorystore's AUTH string to
/// `REDIS_URL`) or a secret in its query (`?key=…`). `Debug` and `Display` show it with
/// those parts replaced by `[redacted]`, so `Settings` can be logged whole and an error can
/// name the server; [`SecretUrl::expose`] gives the real URL to the client that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, credentials included: only for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as logs and errors may show it.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with its user information (everything before the last `@` ahead of the query), every
/// query value and any fragment replaced by `[redacted]`; scheme, host, port and path stay, so
/// a log still says which server. Every query value goes, not only `key=` or `token=`: a
/// parameter's name is no promise about what its value holds.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "[redacted]";
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    // The last '@': a password may itself hold '@' or '/' when it was not percent-encoded.
    match location.rfind('@') {
        Some(at) => {
            out.push_str(HIDDEN);
            out.push_str(&location[at..]);
        }
        None => out.push_str(location),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={HIDDEN}"),
                None if pair.is_empty() => String::new(),
                None => HIDDEN.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push('#');
        out.push_str(HIDDEN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_logs_and_keep_them_for_the_client() {
        for (url, shown) in [
            ("redis://:s3cret@10.0.0.3:6379/0", "redis://[redacted]@10.0.0.3:6379/0"),
            (
                "redis://default:s3cret@10.0.0.3:6379",
                "redis://[redacted]@10.0.0.3:6379",
            ),
            ("rediss://u:p@ss/w@host:6380", "rediss://[redacted]@host:6380"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=[redacted]&pass=[redacted]",
            ),
            (
                "https://proxy.example/v1?key=s3cret",
                "https://proxy.example/v1?key=[redacted]",
            ),
            (
                "https://u:s3cret@proxy.example/x?s3cret#s3cret",
                "https://[redacted]@proxy.example/x?[redacted]#[redacted]",
            ),
            ("http://127.0.0.1:4443", "http://127.0.0.1:4443"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let secret = SecretUrl::new(url);
            assert_eq!(secret.expose(), url);
            assert_eq!(secret.to_string(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
        }
    }
}
