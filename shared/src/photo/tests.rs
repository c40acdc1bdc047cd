use std::sync::atomic::Ordering;
use std::time::Duration;

use super::test_support::{local_flow, put_photo};
use super::*;
use crate::events::features::AnnouncedFeatures;
use crate::events::storage::{StorageEvent, StorageEventKind};
use crate::functions::Functions;

fn upload(name: &str) -> StorageEvent {
    StorageEvent {
        kind: StorageEventKind::Finalized,
        bucket: "uploads".into(),
        object: name.into(),
        generation: 1,
        content_type: Some("image/png".into()),
        envelope: "test",
    }
}

/// The flow stopped right after `ongi-results` took the result, before it was stored (the
/// topic never answers, and the call is dropped, as a process killed there): the redelivery
/// publishes the result again and stores it, and a walk then finds it current. At no point is
/// a result stored that was not published.
#[tokio::test]
async fn a_stop_between_publishing_and_storing_is_published_again_on_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    put_photo(dir.path(), "p.png", 1);
    let local = local_flow(dir.path());
    let flow = &local.flow;

    // The upload: features computed and announced.
    let uploaded = admit_upload(&upload("p.png"), &local.bucket).unwrap();
    let done = flow.run(&uploaded).await.unwrap();
    assert!(done.computed && done.results.is_empty());
    let announcement = local.features.sent();
    assert_eq!(announcement.len(), 1);
    let message: crate::events::publish::FeaturesMessage = serde_json::from_value(announcement[0].clone()).unwrap();
    let announced = Arrival::announced(
        &AnnouncedFeatures {
            bucket: local.bucket.clone(),
            hash: done.hash,
            message,
        },
        &Functions::only(Function::Quality),
    );
    let key = local.cache.keyspace().result("quality", flow.model_id(), &done.hash);
    let stored = || async { local.cache.get_many(std::slice::from_ref(&key)).await.remove(0) };

    // Stopped between the two steps: published once, not stored.
    local.results.hang_after_publish.store(true, Ordering::Relaxed);
    let stopped = tokio::time::timeout(Duration::from_millis(500), flow.run(&announced)).await;
    assert!(stopped.is_err(), "the flow must still be waiting on the topic");
    assert_eq!(local.results.sent().len(), 1);
    assert!(stored().await.is_none(), "a result is stored only once published");

    // The redelivery: the result is published again, then stored.
    local.results.hang_after_publish.store(false, Ordering::Relaxed);
    let redelivered = flow.run(&announced).await.unwrap();
    let sent = local.results.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[0], sent[1],
        "the same result, twice: consumers key on object and module"
    );
    assert_eq!(sent[1]["module"], "quality");
    assert_eq!(sent[1]["object"], "p.png");
    let kept: serde_json::Value = serde_json::from_slice(&stored().await.expect("stored after publishing")).unwrap();
    assert_eq!(kept, sent[1]["result"]);
    assert_eq!(redelivered.results, vec![(Function::Quality, kept)]);

    // A walk finds the result stored, so published: nothing is sent again.
    let photo = announced.photo.clone();
    let walked = flow
        .run(&Arrival::walked(photo, false, vec![Function::Quality]))
        .await
        .unwrap();
    assert!(walked.results.is_empty() && walked.without_result.is_empty());
    assert_eq!(local.results.sent().len(), 2);
}

/// A failed announcement forgets the generation's alias, so a walk still finds it due.
#[tokio::test]
async fn a_failed_announcement_forgets_the_alias_and_fails_as_transient() {
    let dir = tempfile::tempdir().unwrap();
    put_photo(dir.path(), "p.png", 2);
    let local = local_flow(dir.path());
    local.features.down.store(true, Ordering::Relaxed);
    let arrival = admit_upload(&upload("p.png"), &local.bucket).unwrap();
    let failed = local.flow.run(&arrival).await.unwrap_err();
    assert!(matches!(failed, FlowError::Transient(_)), "{failed}");
    let alias = local
        .cache
        .keyspace()
        .alias(&local.bucket, "p.png", arrival.photo.generation);
    assert!(local.cache.get_many(&[alias]).await[0].is_none());
}

#[test]
fn uploads_that_need_no_processing_are_refused_with_the_reason() {
    let bucket = BucketName::parse("uploads").unwrap();
    let mut deleted = upload("a.jpg");
    deleted.kind = StorageEventKind::Other("google.cloud.storage.object.v1.deleted".into());
    let mut elsewhere = upload("a.jpg");
    elsewhere.bucket = "other".into();
    let mut text = upload("a.txt");
    text.content_type = Some("text/plain".into());
    let mut untyped = upload("a.jpg");
    untyped.content_type = None;
    let cases = [
        (deleted, Some("needs no processing")),
        (elsewhere, Some("is not served here")),
        (text, Some("is not an image")),
        (upload("../a.jpg"), Some("object name refused")),
        (untyped, None),
        (upload("a.jpg"), None),
    ];
    for (event, refused) in cases {
        match (admit_upload(&event, &bucket), refused) {
            (Ok(arrival), None) => assert!(arrival.plan.announce && arrival.plan.results.is_empty()),
            (Err(why), Some(want)) => assert!(why.contains(want), "{why} should say {want}"),
            (got, want) => panic!("{event:?}: {got:?}, expected {want:?}"),
        }
    }
}
