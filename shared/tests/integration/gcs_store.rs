//! Cloud Storage against fake-gcs-server (`STORAGE_EMULATOR_HOST`): round trip,
//! generations, checksums, errors, and the shape of V4 signed URLs.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use ongi_shared::domain::BucketName;
use ongi_shared::storage::gcs::GcsStore;
use ongi_shared::storage::{ObjectStore, StorageError};

use crate::support::{free_port, storage_emulator, unique_name};

fn uploads() -> BucketName {
    BucketName::parse("uploads").unwrap()
}

fn test_signer() -> google_cloud_auth::signer::Signer {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-service-account.json");
    let key: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    google_cloud_auth::credentials::service_account::Builder::new(key)
        .build_signer()
        .expect("the test key builds a signer")
}

async fn store() -> GcsStore {
    GcsStore::emulator(&storage_emulator(), Some(test_signer()))
        .await
        .unwrap()
}

#[tokio::test]
async fn round_trip_generation_and_checksum() {
    let store = store().await;
    let name = unique_name("jpg");
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let g1 = store
        .put(&uploads(), &name, Bytes::from(body.clone()), "image/jpeg")
        .await
        .expect("upload to the emulator");
    let got = store.get(&uploads(), &name, 1 << 20).await.unwrap();
    assert_eq!(got.bytes.len(), body.len());
    assert!(got.bytes[..] == body[..], "the bytes came back changed");
    assert_eq!(got.generation, g1);

    // The emulator's metadata holds the CRC32C of what it stored: it must be ours.
    let meta: serde_json::Value = reqwest::get(format!(
        "{}/storage/v1/b/uploads/o/{}",
        storage_emulator(),
        name.replace('/', "%2F")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let crc = base64::engine::general_purpose::STANDARD
        .decode(meta["crc32c"].as_str().expect("crc32c in the metadata"))
        .unwrap();
    assert_eq!(crc, crc32c::crc32c(&body).to_be_bytes());

    let g2 = store
        .put(&uploads(), &name, Bytes::from_static(b"second"), "image/jpeg")
        .await
        .unwrap();
    assert!(g2 > g1, "overwrite generation {g2} should exceed {g1}");
    let got = store.get(&uploads(), &name, 1 << 20).await.unwrap();
    assert_eq!(&got.bytes[..], b"second");
    assert_eq!(got.generation, g2);

    assert!(matches!(
        store.get(&uploads(), &name, 3).await,
        Err(StorageError::TooLarge { size: 6, .. })
    ));
    assert!(matches!(
        store.get(&uploads(), &unique_name("jpg"), 1 << 20).await,
        Err(StorageError::NotFound { .. })
    ));
    store.check(&uploads()).await.expect("the emulator is reachable");
}

#[tokio::test]
async fn signed_urls_are_v4_and_expire_within_fifteen_minutes() {
    let store = store().await;
    let name = unique_name("png");
    store
        .put(&uploads(), &name, Bytes::from_static(b"signed body"), "image/png")
        .await
        .unwrap();
    let url = store
        .signed_url(&uploads(), &name, Duration::from_secs(3600))
        .await
        .unwrap();
    let (base, query) = url.split_once('?').expect("a query string");
    assert_eq!(base, format!("{}/uploads/{name}", storage_emulator()));
    let params: std::collections::HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
    assert_eq!(params["X-Goog-Algorithm"], "GOOG4-RSA-SHA256");
    assert!(
        params["X-Goog-Credential"].starts_with("ongi-tests%40ongi-test.iam.gserviceaccount.com%2F"),
        "{}",
        params["X-Goog-Credential"]
    );
    assert!(params["X-Goog-Credential"].ends_with("%2Fauto%2Fstorage%2Fgoog4_request"));
    assert_eq!(
        params["X-Goog-Expires"], "900",
        "an hour was asked for; 15 minutes is the cap"
    );
    assert_eq!(params["X-Goog-SignedHeaders"], "host");
    assert_eq!(params["X-Goog-Date"].len(), "20261125T120000Z".len());
    let signature = params["X-Goog-Signature"];
    assert_eq!(signature.len(), 512, "RSA-2048 signature in hex");
    assert!(signature.chars().all(|c| c.is_ascii_hexdigit()));
    // The emulator serves the object at the signed URL (it does not check signatures).
    let body = reqwest::get(&url).await.unwrap();
    assert!(body.status().is_success(), "{}", body.status());
    assert_eq!(&body.bytes().await.unwrap()[..], b"signed body");
}

#[tokio::test]
async fn an_unreachable_store_is_a_transient_error() {
    let dead = GcsStore::emulator(&format!("http://127.0.0.1:{}", free_port()), None)
        .await
        .unwrap();
    let err = dead.get(&uploads(), "a.jpg", 1 << 20).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(dead.check(&uploads()).await.is_err());
    let err = dead
        .signed_url(&uploads(), "a.jpg", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sign"), "{err}");
}
