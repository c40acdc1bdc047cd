//! `ongi-features` Pub/Sub push bodies: envelope, base64 data, the message, its bucket and
//! content hash. Accepted messages must carry a valid bucket and a 32-byte hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongi_shared::events::features::parse_push;
use ongi_shared::events::publish::FEATURES_SCHEMA;

fuzz_target!(|data: &[u8]| {
    if let Ok(announced) = parse_push(data) {
        assert_eq!(announced.message.schema, FEATURES_SCHEMA);
        assert_eq!(announced.bucket.as_str(), announced.message.bucket);
        assert_eq!(
            announced.hash.to_hex(),
            announced.message.content_hash.to_ascii_lowercase()
        );
    }
});
