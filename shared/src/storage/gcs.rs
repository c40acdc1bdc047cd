//! Google Cloud Storage through the official `google-cloud-storage` client.
//!
//! - With `STORAGE_EMULATOR_HOST` the client talks to that endpoint with anonymous
//!   credentials (the client does not read the variable itself).
//! - Every write carries its CRC32C up front (`with_known_crc32c`): GCS verifies it, and
//!   fake-gcs-server mishandles the trailing checksum part the client sends otherwise.
//! - Signed URLs are V4, signed by a [`Signer`]: on Cloud Run the service account's (IAM
//!   signBlob through the metadata server), in tests one built from a key.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_auth::signer::Signer;
use google_cloud_storage::builder::storage::SignedUrlBuilder;
use google_cloud_storage::client::Storage;

use super::{MAX_SIGNED_URL_TTL, ObjectStore, StorageError, StoredObject};
use crate::domain::BucketName;

/// Any single storage call that takes longer than this is treated as an outage.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's default retries transient errors for up to 5 minutes, far past any
/// request's patience; an outage should surface as a clear 503 within seconds.
fn retry_policy() -> impl google_cloud_gax::retry_policy::RetryPolicy {
    use google_cloud_gax::retry_policy::RetryPolicyExt;
    google_cloud_storage::retry_policy::RetryableErrors
        .with_time_limit(Duration::from_secs(8))
        .with_attempt_limit(3)
}

#[derive(Clone)]
pub struct GcsStore {
    client: Storage,
    /// The emulator's endpoint, also used as the host of signed URLs.
    endpoint: Option<String>,
    signer: Option<Signer>,
}

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsStore")
            .field("endpoint", &self.endpoint)
            .field("signer", &self.signer.is_some())
            .finish()
    }
}

impl GcsStore {
    /// Production: Application Default Credentials, and a signer from the same credentials.
    pub async fn production() -> Result<Self, StorageError> {
        let client = Storage::builder()
            .with_retry_policy(retry_policy())
            .build()
            .await
            .map_err(|e| StorageError::Other(format!("cannot build the Cloud Storage client: {e}")))?;
        // Without a signer the service still reads and writes; only signed URLs fail.
        let signer = match google_cloud_auth::credentials::Builder::default().build_signer() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no credentials can sign URLs; signed URLs will fail");
                None
            }
        };
        Ok(Self {
            client,
            endpoint: None,
            signer,
        })
    }

    /// The emulator (fake-gcs-server): the given endpoint, anonymous credentials.
    pub async fn emulator(endpoint: &str, signer: Option<Signer>) -> Result<Self, StorageError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let client = Storage::builder()
            .with_endpoint(endpoint.clone())
            .with_retry_policy(retry_policy())
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
            .build()
            .await
            .map_err(|e| StorageError::Other(format!("cannot build the Cloud Storage client: {e}")))?;
        Ok(Self {
            client,
            endpoint: Some(endpoint),
            signer,
        })
    }

    fn bucket_path(bucket: &BucketName) -> String {
        format!("projects/_/buckets/{bucket}")
    }
}

fn classify(bucket: &BucketName, object: &str, e: google_cloud_storage::Error) -> StorageError {
    match e.http_status_code() {
        Some(404) => StorageError::NotFound {
            bucket: bucket.to_string(),
            object: object.to_owned(),
        },
        Some(403) | Some(401) => StorageError::Refused(format!("{bucket}/{object}: permission denied")),
        Some(code) if code >= 500 || code == 429 => {
            StorageError::Unavailable(format!("{bucket}/{object}: HTTP {code}"))
        }
        Some(code) => StorageError::Other(format!("{bucket}/{object}: HTTP {code}: {e}")),
        // No HTTP status: the request never got an answer (connection refused, DNS, TLS).
        None => StorageError::Unavailable(format!("{bucket}/{object}: {e}")),
    }
}

async fn with_timeout<T>(what: &str, fut: impl Future<Output = Result<T, StorageError>>) -> Result<T, StorageError> {
    tokio::time::timeout(CALL_TIMEOUT, fut).await.unwrap_or_else(|_| {
        Err(StorageError::Unavailable(format!(
            "{what} timed out after {CALL_TIMEOUT:?}"
        )))
    })
}

#[async_trait]
impl ObjectStore for GcsStore {
    async fn get(&self, bucket: &BucketName, object: &str, max_bytes: u64) -> Result<StoredObject, StorageError> {
        with_timeout("read", async {
            let mut response = self
                .client
                .read_object(Self::bucket_path(bucket), object)
                .send()
                .await
                .map_err(|e| classify(bucket, object, e))?;
            let meta = response.object();
            let size = u64::try_from(meta.size).unwrap_or(0);
            let too_large = |size| StorageError::TooLarge {
                bucket: bucket.to_string(),
                object: object.to_owned(),
                size,
                limit: max_bytes,
            };
            if size > max_bytes {
                return Err(too_large(size));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            while let Some(chunk) = response.next().await {
                let chunk = chunk.map_err(|e| classify(bucket, object, e))?;
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > max_bytes {
                    return Err(too_large(bytes.len() as u64));
                }
            }
            Ok(StoredObject {
                bytes: Bytes::from(bytes),
                generation: meta.generation,
            })
        })
        .await
    }

    async fn put(
        &self,
        bucket: &BucketName,
        object: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<i64, StorageError> {
        with_timeout("write", async {
            let crc = crc32c::crc32c(&bytes);
            let written = self
                .client
                .write_object(Self::bucket_path(bucket), object, bytes)
                .set_content_type(content_type)
                .with_known_crc32c(crc)
                .send_unbuffered()
                .await
                .map_err(|e| classify(bucket, object, e))?;
            Ok(written.generation)
        })
        .await
    }

    async fn signed_url(&self, bucket: &BucketName, object: &str, ttl: Duration) -> Result<String, StorageError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| StorageError::Other("no credentials that can sign URLs are configured".into()))?;
        let mut builder = SignedUrlBuilder::for_object(Self::bucket_path(bucket), object)
            .with_method(http::Method::GET)
            .with_expiration(ttl.min(MAX_SIGNED_URL_TTL));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        with_timeout("signing", async {
            builder
                .sign_with(signer)
                .await
                .map_err(|e| StorageError::Other(format!("cannot sign a URL for {bucket}/{object}: {e}")))
        })
        .await
    }

    async fn check(&self, bucket: &BucketName) -> Result<(), StorageError> {
        // Reading an object that does not exist proves the service answers and the bucket
        // is reachable, without listing (which needs more permissions) or writing.
        match self.get(bucket, ".ongi-readiness-probe", 0).await {
            Ok(_) | Err(StorageError::NotFound { .. }) | Err(StorageError::TooLarge { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn kind(&self) -> &'static str {
        "gcs"
    }
}
