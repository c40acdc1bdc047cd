//! Paged listing, the first step of batch reprocessing, on the real stores: the local
//! folder (in GCS order, inside the bucket) and fake-gcs-server (generations and times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ongi_shared::domain::BucketName;
use ongi_shared::storage::gcs::GcsStore;
use ongi_shared::storage::local::LocalStore;
use ongi_shared::storage::{ListQuery, ObjectInfo, ObjectStore, StorageError};
use serde_json::Value;

use crate::support::storage_emulator;

fn uploads() -> BucketName {
    BucketName::parse("uploads").unwrap()
}

/// Every page of a listing, with the number of pages it took.
async fn list_all(
    store: &dyn ObjectStore,
    prefix: &str,
    start_after: Option<&str>,
    page_size: u32,
) -> (Vec<ObjectInfo>, usize) {
    let mut query = ListQuery {
        prefix: prefix.to_owned(),
        start_after: start_after.map(str::to_owned),
        page_token: None,
        page_size,
    };
    let (mut all, mut pages) = (Vec::new(), 0);
    loop {
        let page = store.list(&uploads(), &query).await.expect("a page");
        pages += 1;
        assert!(
            page.objects.len() <= page_size as usize,
            "a page holds at most page_size"
        );
        all.extend(page.objects);
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => return (all, pages),
        }
        assert!(pages < 100, "the listing does not end");
    }
}

fn names(objects: &[ObjectInfo]) -> Vec<&str> {
    objects.iter().map(|o| o.name.as_str()).collect()
}

#[tokio::test]
async fn the_local_folder_lists_in_gcs_order_page_by_page_and_stays_inside_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("data")).unwrap();
    let bucket = dir.path().join("data/uploads");
    // Names whose folder-by-folder order differs from GCS's order of whole names:
    // "a-c.jpg" < "a.jpg" < "a/b.jpg" ('-' < '.' < '/').
    let mut expected: Vec<String> = vec!["a-c.jpg".into(), "a.jpg".into(), "a/b.jpg".into(), "a/z/y.jpg".into()];
    expected.extend((0..9).map(|i| format!("p/{i:02}.png")));
    expected.push("p/inside-link.png".into());
    for name in &expected {
        let path = bucket.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, name.as_bytes()).unwrap();
    }
    // What must never be listed: a symlink out of the bucket, a symlinked folder (not
    // followed), a dangling symlink, and a half-written `put`.
    std::fs::write(dir.path().join("secret.jpg"), b"secret").unwrap();
    std::fs::remove_file(bucket.join("p/inside-link.png")).unwrap();
    std::os::unix::fs::symlink(bucket.join("p/00.png"), bucket.join("p/inside-link.png")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.jpg"), bucket.join("p/outside-link.jpg")).unwrap();
    std::os::unix::fs::symlink(bucket.join("p"), bucket.join("q-folder-link")).unwrap();
    std::os::unix::fs::symlink(bucket.join("gone.jpg"), bucket.join("p/dangling.jpg")).unwrap();
    std::fs::write(bucket.join("p/.0f1e.tmp-123"), b"half").unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(bucket.join("a.jpg"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let (all, pages) = list_all(&store, "", None, 4).await;
    assert_eq!(names(&all), expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pages, 4, "14 objects, 4 per page");
    let a = &all[1];
    assert_eq!((a.size, a.updated, a.content_type.as_deref()), (5, old, None));
    assert_eq!(
        all[1].generation, 1_600_000_000_000_000,
        "the generation is the mtime in µs"
    );
    let link = all.iter().find(|o| o.name == "p/inside-link.png").unwrap();
    assert_eq!(
        link.size, 8,
        "a symlink inside the bucket is listed with its target's metadata"
    );

    let (under_a, _) = list_all(&store, "a/", None, 1000).await;
    assert_eq!(names(&under_a), ["a/b.jpg", "a/z/y.jpg"]);
    let (after, _) = list_all(&store, "p/", Some("p/05.png"), 2).await;
    assert_eq!(names(&after), ["p/06.png", "p/07.png", "p/08.png", "p/inside-link.png"]);
    let (none, pages) = list_all(&store, "nothing/", None, 10).await;
    assert!(none.is_empty() && pages == 1);

    let missing = store
        .list(&BucketName::parse("no-such-bucket").unwrap(), &ListQuery::default())
        .await;
    assert!(matches!(missing, Err(StorageError::BucketNotFound(_))), "{missing:?}");
}

/// Uploads `name` (its own name as the bytes) with the JSON API's media upload; its generation.
async fn emulator_media_upload(name: &str, content_type: &str) -> i64 {
    let mut url = reqwest::Url::parse(&format!("{}/upload/storage/v1/b/uploads/o", storage_emulator())).unwrap();
    url.query_pairs_mut()
        .append_pair("uploadType", "media")
        .append_pair("name", name);
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(name.to_owned())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let meta: Value = resp.json().await.unwrap();
    meta["generation"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn fake_gcs_server_lists_page_by_page_with_generations_and_times() {
    let store = GcsStore::emulator(&storage_emulator(), None).await.unwrap();
    let prefix = format!("tests/list-{}/", uuid::Uuid::new_v4());
    let before = SystemTime::now() - Duration::from_secs(5);
    let mut generations = Vec::new();
    let names_put: Vec<String> = ["a-c.jpg", "a.jpg", "a/b.jpg", "b/1.png", "b/2.png", "c.webp", "d.txt"]
        .iter()
        .map(|n| format!("{prefix}{n}"))
        .collect();
    // Uploaded out of order: the listing's order is the names', not the uploads'.
    for name in names_put.iter().rev() {
        let g = if name.ends_with(".txt") {
            // fake-gcs-server keeps the content type of a plain media upload (not of the
            // client's multipart one), so this one goes up that way.
            emulator_media_upload(name, "text/plain").await
        } else {
            store
                .put(&uploads(), name, Bytes::from(name.clone().into_bytes()), "image/jpeg")
                .await
                .unwrap()
        };
        generations.push((name.clone(), g));
    }
    let after_upload = SystemTime::now() + Duration::from_secs(5);

    let (all, pages) = list_all(&store, &prefix, None, 3).await;
    assert_eq!(names(&all), names_put.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pages, 3, "7 objects, 3 per page");
    for o in &all {
        let (_, g) = generations.iter().find(|(n, _)| *n == o.name).unwrap();
        assert_eq!(o.generation, *g, "{}", o.name);
        assert_eq!(o.size, o.name.len() as u64);
        assert!(
            o.updated > before && o.updated < after_upload,
            "{}: {:?}",
            o.name,
            o.updated
        );
    }
    assert_eq!(all[6].content_type.as_deref(), Some("text/plain"));

    let (under_b, _) = list_all(&store, &format!("{prefix}b/"), None, 1000).await;
    assert_eq!(names(&under_b), [names_put[3].as_str(), names_put[4].as_str()]);
    let (after, _) = list_all(&store, &prefix, Some(&names_put[4]), 2).await;
    assert_eq!(
        names(&after),
        [names_put[5].as_str(), names_put[6].as_str()],
        "strictly after the cursor"
    );

    let missing = store
        .list(&BucketName::parse("no-such-bucket").unwrap(), &ListQuery::default())
        .await;
    assert!(matches!(missing, Err(StorageError::BucketNotFound(_))), "{missing:?}");
}
