//! Request bodies of every JSON route, parsed as the routes parse them and then validated:
//! no input may panic, and whatever validation accepts must respect the bounds (at most
//! `MAX_REFS_PER_CALL` references, all in the served bucket; style numbers in range).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongi_shared::domain::BucketName;
use ongi_shared::http::MAX_REFS_PER_CALL;
use ongi_shared::http::request::{
    CategoriesRequest, ImagesRequest, ScoreRequest, StyleRequest, validate_ref, validate_refs, validate_score,
};
use ongi_shared::http::routes::style::{MAX_STEPS, params};

fuzz_target!(|data: &[u8]| {
    let served = BucketName::parse("uploads").expect("a valid bucket name");
    let in_bucket = |r: &ongi_shared::domain::ImageRef| r.bucket().is_none_or(|b| b == &served);
    if let Ok(req) = serde_json::from_slice::<ImagesRequest>(data)
        && let Ok(refs) = validate_refs("images", &req.images, &served)
    {
        assert!(!refs.is_empty() && refs.len() <= MAX_REFS_PER_CALL);
        assert!(refs.iter().all(in_bucket));
    }
    if let Ok(req) = serde_json::from_slice::<CategoriesRequest>(data)
        && let Ok(refs) = validate_refs("images", &req.images, &served)
    {
        assert!(refs.len() <= MAX_REFS_PER_CALL);
    }
    if let Ok(req) = serde_json::from_slice::<ScoreRequest>(data)
        && let Ok(groups) = validate_score(&req, &served)
    {
        let total: usize = groups.iter().map(|(_, refs)| refs.len()).sum();
        assert!(total <= MAX_REFS_PER_CALL);
        assert!(groups.iter().flat_map(|(_, refs)| refs).all(in_bucket));
    }
    if let Ok(req) = serde_json::from_slice::<StyleRequest>(data)
        && validate_ref("image", &req.image, &served).is_ok()
        && let Ok(p) = params(&req)
    {
        assert!(p.strength > 0.0 && p.strength <= 1.0);
        assert!((1..=MAX_STEPS).contains(&p.steps));
        assert!((1.0..=20.0).contains(&p.guidance_scale));
    }
    let _ = serde_json::from_slice::<ongi_shared::http::routes::batch::ReprocessBody>(data);
});
