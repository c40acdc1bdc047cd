//! Upload notifications: the three envelopes (CloudEvent binary, CloudEvent structured,
//! Pub/Sub push) with fuzzed headers and body. Parsing must name what is wrong or give an
//! event that names a valid bucket, an object and a positive generation.
//!
//! Input layout (so seeds can be written by hand, see `seeds.py`): one byte choosing the
//! envelope, then for the binary mode three length-prefixed header values (`ce-type`,
//! `ce-subject`, `ce-source`; one length byte each), then the body.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use ongi_shared::events::storage::parse;

/// Splits a length-prefixed field off the front.
fn field<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, rest)) = data.split_first() else {
        return &[];
    };
    let (value, rest) = rest.split_at(usize::from(len).min(rest.len()));
    *data = rest;
    value
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        headers.insert(name, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&envelope, mut rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    match envelope % 3 {
        0 => {
            put(&mut headers, "ce-type", field(&mut rest));
            put(&mut headers, "ce-subject", field(&mut rest));
            put(&mut headers, "ce-source", field(&mut rest));
        }
        1 => put(
            &mut headers,
            "content-type",
            b"application/cloudevents+json; charset=utf-8",
        ),
        _ => put(&mut headers, "content-type", b"application/json"),
    }
    if let Ok(event) = parse(&headers, rest) {
        assert!(
            ongi_shared::domain::BucketName::parse(&event.bucket).is_ok(),
            "an event with an invalid bucket was accepted: {event:?}"
        );
        assert!(!event.object.is_empty(), "an event without an object was accepted");
        assert!(event.generation >= 1, "a non-positive generation was accepted");
    }
});
