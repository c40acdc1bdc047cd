//! Reference validation, the one gate between a request and storage: whatever it accepts
//! must stay inside its bucket (every path component a plain name) and must not be a URL.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use ongi_shared::domain::{ImageRef, MAX_REF_BYTES};

fuzz_target!(|raw: &str| {
    let Ok(r) = ImageRef::parse(raw) else { return };
    let object = r.object();
    assert!(!object.is_empty() && raw.len() <= MAX_REF_BYTES);
    assert!(
        Path::new(object)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{object:?} has a component that could leave the bucket"
    );
    assert!(!object.contains('\\') && !object.chars().any(char::is_control));
    assert!(
        r.bucket().is_some() || !raw.contains("://"),
        "a URL was accepted: {raw:?}"
    );
    // Joined under a bucket folder, it stays there.
    let root = Path::new("/data/uploads");
    assert!(root.join(object).starts_with(root));
});
