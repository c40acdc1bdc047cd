//! One parser per kind of setting: text in, the value or what was expected out. They know
//! nothing of where the text comes from (the environment today, command-line arguments
//! tomorrow), so each can be reused as is; the readers in `read` add the name to the error.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::domain::BucketName;

pub fn port(v: &str) -> Result<u16, String> {
    v.parse().map_err(|_| "a TCP port number, 0-65535".to_owned())
}

pub fn ip(v: &str) -> Result<IpAddr, String> {
    v.parse()
        .map_err(|_| "an IP address such as 0.0.0.0 or 127.0.0.1".to_owned())
}

pub fn boolean(v: &str) -> Result<bool, String> {
    one_of(v, &[("true", true), ("false", false)])
}

/// One of the names in `options` (exactly as written there).
pub fn one_of<T: Copy>(v: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            match names.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => "nothing".to_owned(),
            }
        })
}

/// A whole number in `range`.
pub fn count<T>(v: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display,
{
    match v.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("a whole number from {} to {}", range.start(), range.end())),
    }
}

/// A whole number of at least 1.
pub fn positive(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("a whole number of at least 1".to_owned()),
    }
}

/// A whole number of seconds, from 1 to `max`.
pub fn seconds(v: &str, max: u64) -> Result<Duration, String> {
    count(v, 1..=max)
        .map(Duration::from_secs)
        .map_err(|_| format!("a whole number of seconds from 1 to {max}"))
}

/// A finite number: `NaN` and infinities compare false with everything, so a threshold
/// holding one silently decides nothing.
fn finite(v: &str, expected: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(expected.to_owned()),
    }
}

fn finite_f32(v: &str, expected: &str, ok: impl Fn(f32) -> bool) -> Result<f32, String> {
    let x = finite(v, expected)? as f32;
    if x.is_finite() && ok(x) {
        Ok(x)
    } else {
        Err(expected.to_owned())
    }
}

/// A finite number from 0 to 1.
pub fn fraction(v: &str) -> Result<f32, String> {
    finite_f32(v, "a number from 0 to 1", |x| (0.0..=1.0).contains(&x))
}

/// A cosine: a finite number from -1 to 1.
pub fn cosine(v: &str) -> Result<f32, String> {
    finite_f32(v, "a cosine, a number from -1 to 1", |x| (-1.0..=1.0).contains(&x))
}

/// A cosine threshold where any value above 1 turns the test off: a finite number of at least -1.
pub fn cosine_or_off(v: &str) -> Result<f32, String> {
    finite_f32(v, "a cosine from -1 to 1, or above 1 to turn the tier off", |x| {
        x >= -1.0
    })
}

/// A finite number of at least 0.
pub fn non_negative(v: &str) -> Result<f64, String> {
    match finite(v, "a finite number of at least 0")? {
        x if x >= 0.0 => Ok(x),
        _ => Err("a finite number of at least 0".to_owned()),
    }
}

pub fn bucket(v: &str) -> Result<BucketName, String> {
    BucketName::parse(v).map_err(|e| e.to_string())
}

/// The prefix of every Redis key: visible text without spaces, 1 to 128 bytes.
pub fn key_prefix(v: &str) -> Result<String, String> {
    let ok = !v.is_empty() && v.len() <= 128 && v.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(
            "a key prefix of 1 to 128 visible characters without spaces, such as ongi:; unset it for the default"
                .into(),
        )
    }
}

/// A Pub/Sub topic id: 3 to 255 of letters, digits and `-_.~+%`, starting with a letter.
pub fn topic_id(v: &str) -> Result<String, String> {
    let ok = (3..=255).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c));
    if ok {
        Ok(v.to_owned())
    } else {
        Err("a Pub/Sub topic id: 3 to 255 letters, digits or -_.~+%, starting with a letter".into())
    }
}

/// A Google Cloud project id (`my-project`, or the older `example.com:my-project`).
pub fn project_id(v: &str) -> Result<String, String> {
    let ok = (1..=100).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c));
    if ok {
        Ok(v.to_owned())
    } else {
        Err("a Google Cloud project id: lowercase letters, digits and hyphens".into())
    }
}

/// A model name that goes into a URL path (`gemini-2.5-flash`): letters, digits, `._-`.
pub fn model_name(v: &str) -> Result<String, String> {
    let ok = (1..=100).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(v.to_owned())
    } else {
        Err("a model name of letters, digits, '.', '_' and '-'".into())
    }
}

/// A secret sent in a header: visible ASCII, no spaces.
pub fn secret_text(v: &str) -> Result<String, String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic()) {
        Ok(v.to_owned())
    } else {
        Err("visible ASCII characters without spaces".into())
    }
}

/// The bearer token of `ONGI_API_TOKEN`: a secret of at least 16 characters.
pub fn api_token(v: &str) -> Result<String, String> {
    match secret_text(v) {
        Ok(t) if t.len() >= 16 => Ok(t),
        _ => Err("a secret of at least 16 visible ASCII characters without spaces".into()),
    }
}

/// `host:port`, the emulators' convention.
pub fn host_port(v: &str) -> Result<String, String> {
    let ok = v.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.chars().any(|c| c.is_whitespace() || c.is_control()) && port.parse::<u16>().is_ok()
    });
    if ok { Ok(v.to_owned()) } else { Err("host:port".into()) }
}

/// `redis://host:port[/db]` (or `rediss://`, `redis+unix://`), as the Redis client reads it.
pub fn redis_url(v: &str) -> Result<String, String> {
    if !(v.starts_with("redis://") || v.starts_with("rediss://") || v.starts_with("redis+unix://")) {
        return Err("redis://host:port[/db] or rediss://…".into());
    }
    redis::Client::open(v).map_err(|e| format!("a Redis URL ({e})"))?;
    Ok(v.to_owned())
}

/// An emulator's address (`STORAGE_EMULATOR_HOST`, `PUBSUB_EMULATOR_HOST`) as a URL: the
/// emulator convention is a bare `host:port`, which gets `http://`; an `http://` or
/// `https://` URL is kept as it is.
pub fn with_http_scheme(v: &str) -> String {
    if v.starts_with("http://") || v.starts_with("https://") {
        v.to_owned()
    } else {
        format!("http://{v}")
    }
}

/// Accepts `http(s)://host[:port][/path]` or a bare `host:port` (the emulator convention),
/// and returns it with a scheme and without a trailing slash.
/// The URL is read by the same parser the HTTP client uses, so a value that passes here
/// cannot fail at start-up (`::::`, a port that is not a number, an empty host).
pub fn http_base(v: &str) -> Result<String, String> {
    let with_scheme = with_http_scheme(v);
    if with_scheme != v && v.contains("://") {
        return Err("an http:// or https:// URL".into());
    }
    let parsed =
        reqwest::Url::parse(&with_scheme).map_err(|e| format!("an http:// or https:// URL with a host ({e})"))?;
    if parsed.host_str().is_none_or(str::is_empty) || with_scheme.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an http:// or https:// URL with a host".into());
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

/// Where software is downloaded from (`ONGI_ORT_DOWNLOAD_URL`): an `https://` URL, or
/// `http://` to this machine only (a local mirror, a test server). The download's SHA-256 is
/// pinned either way; this keeps the fetch off plain HTTP across a network and refuses
/// anything that is not a URL at all.
pub fn download_base(v: &str) -> Result<String, String> {
    const EXPECTED: &str = "an https:// URL (http:// only to this machine: localhost, 127.0.0.1, [::1])";
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(EXPECTED.into());
    }
    let base = http_base(v)?;
    let parsed = reqwest::Url::parse(&base).map_err(|_| EXPECTED.to_owned())?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if parsed.scheme() == "http" && !loopback {
        return Err(EXPECTED.into());
    }
    Ok(base)
}
