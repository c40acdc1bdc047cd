//! The local folder store: round trip, generations, and refusal of every way out of the root.

use bytes::Bytes;
use ongi_shared::domain::BucketName;
use ongi_shared::storage::local::LocalStore;
use ongi_shared::storage::{ObjectStore, StorageError};

fn uploads() -> BucketName {
    BucketName::parse("uploads").unwrap()
}

#[tokio::test]
async fn round_trip_with_changing_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("data")).unwrap();
    let g1 = store
        .put(&uploads(), "albums/1/a.jpg", Bytes::from_static(b"one"), "image/jpeg")
        .await
        .unwrap();
    let got = store.get(&uploads(), "albums/1/a.jpg", 1 << 20).await.unwrap();
    assert_eq!(&got.bytes[..], b"one");
    assert_eq!(got.generation, g1);
    assert!(dir.path().join("data/uploads/albums/1/a.jpg").is_file());
    std::thread::sleep(std::time::Duration::from_millis(5));
    let g2 = store
        .put(&uploads(), "albums/1/a.jpg", Bytes::from_static(b"two"), "image/jpeg")
        .await
        .unwrap();
    assert_ne!(g1, g2, "an overwrite is a new generation");
    assert!(matches!(
        store.get(&uploads(), "albums/1/a.jpg", 2).await,
        Err(StorageError::TooLarge { size: 3, limit: 2, .. })
    ));
    assert!(matches!(
        store.get(&uploads(), "missing.jpg", 1 << 20).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&uploads(), "albums", 1 << 20).await,
        Err(StorageError::NotFound { .. })
    ));
}

#[tokio::test]
async fn traversal_and_absolute_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
    let store = LocalStore::new(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("data/uploads")).unwrap();
    for bad in [
        "../../secret.txt",
        "../secret.txt",
        "/etc/passwd",
        "a/../../../secret.txt",
        "",
        "dir/",
    ] {
        assert!(
            matches!(store.get(&uploads(), bad, 1 << 20).await, Err(StorageError::Refused(_))),
            "get {bad:?} was not refused"
        );
        assert!(
            matches!(
                store.put(&uploads(), bad, Bytes::from_static(b"x"), "text/plain").await,
                Err(StorageError::Refused(_))
            ),
            "put {bad:?} was not refused"
        );
    }
    assert_eq!(std::fs::read(dir.path().join("secret.txt")).unwrap(), b"secret");
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_that_leave_the_bucket_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.jpg"), b"secret").unwrap();
    let store = LocalStore::new(dir.path().join("data")).unwrap();
    let bucket_dir = dir.path().join("data/uploads");
    std::fs::create_dir_all(bucket_dir.join("inside")).unwrap();
    std::fs::write(bucket_dir.join("inside/ok.jpg"), b"fine").unwrap();
    // A file symlink and a directory symlink pointing outside, one pointing inside.
    std::os::unix::fs::symlink(outside.join("secret.jpg"), bucket_dir.join("leak.jpg")).unwrap();
    std::os::unix::fs::symlink(&outside, bucket_dir.join("escape")).unwrap();
    std::os::unix::fs::symlink(bucket_dir.join("inside/ok.jpg"), bucket_dir.join("alias.jpg")).unwrap();
    // Another bucket is outside this one, too.
    std::fs::create_dir_all(dir.path().join("data/results")).unwrap();
    std::fs::write(dir.path().join("data/results/r.png"), b"result").unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("data/results/r.png"),
        bucket_dir.join("other-bucket.png"),
    )
    .unwrap();

    for bad in ["leak.jpg", "escape/secret.jpg", "other-bucket.png"] {
        assert!(
            matches!(store.get(&uploads(), bad, 1 << 20).await, Err(StorageError::Refused(_))),
            "get {bad:?} was not refused"
        );
    }
    assert!(matches!(
        store
            .put(&uploads(), "escape/planted.jpg", Bytes::from_static(b"x"), "image/jpeg")
            .await,
        Err(StorageError::Refused(_))
    ));
    assert!(!outside.join("planted.jpg").exists());
    assert!(matches!(
        store
            .put(&uploads(), "leak.jpg", Bytes::from_static(b"x"), "image/jpeg")
            .await,
        Err(StorageError::Refused(_))
    ));
    assert_eq!(std::fs::read(outside.join("secret.jpg")).unwrap(), b"secret");
    // A symlink that stays inside the bucket is fine.
    let got = store.get(&uploads(), "alias.jpg", 1 << 20).await.unwrap();
    assert_eq!(&got.bytes[..], b"fine");
}
