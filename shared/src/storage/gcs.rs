//! Google Cloud Storage through the official `google-cloud-storage` client.
//!
//! - With `STORAGE_EMULATOR_HOST` the client talks to that endpoint with anonymous
//!   credentials (the client does not read the variable itself).
//! - Every write carries its CRC32C up front (`with_known_crc32c`): GCS verifies it, and
//!   fake-gcs-server mishandles the trailing checksum part the client sends otherwise.
//! - Signed URLs are V4, signed by a [`Signer`]: on Cloud Run the service account's (IAM
//!   signBlob through the metadata server), in tests one built from a key.
//! - Listing: on Cloud Storage through the official client's [`StorageControl`]
//!   (`list_objects`). That call is gRPC (`google.storage.v2.Storage/ListObjects`), which
//!   fake-gcs-server does not serve (it implements gRPC only for the old `v1` API), so on the
//!   emulator the same listing goes through the JSON API (`GET /storage/v1/b/{bucket}/o`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_auth::signer::Signer;
use google_cloud_storage::builder::storage::SignedUrlBuilder;
use google_cloud_storage::client::{Storage, StorageControl};
use serde::Deserialize;

use super::{ListQuery, MAX_SIGNED_URL_TTL, ObjectInfo, ObjectPage, ObjectStore, StorageError, StoredObject};
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
    lister: Lister,
}

/// How this store lists objects (see the module docs).
#[derive(Clone)]
enum Lister {
    /// Cloud Storage: the official client's control-plane `list_objects`.
    Control(StorageControl),
    /// fake-gcs-server: the JSON API at the emulator's endpoint.
    Json { http: reqwest::Client, endpoint: String },
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
        let control = StorageControl::builder()
            .with_retry_policy(retry_policy())
            .build()
            .await
            .map_err(|e| StorageError::Other(format!("cannot build the Cloud Storage control client: {e}")))?;
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
            lister: Lister::Control(control),
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
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| StorageError::Other(format!("cannot build the emulator's HTTP client: {e}")))?;
        Ok(Self {
            client,
            lister: Lister::Json {
                http,
                endpoint: endpoint.clone(),
            },
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
        Some(code) if code >= 500 || code == 429 || code == 408 => {
            StorageError::Unavailable(format!("{bucket}/{object}: HTTP {code}"))
        }
        // Any other answer in 4xx refuses this request for good (a bad name, a failed
        // precondition): the same request gets the same answer.
        Some(code @ 400..=499) => StorageError::Unreadable(format!("{bucket}/{object}: HTTP {code}: {e}")),
        Some(code) => StorageError::Other(format!("{bucket}/{object}: HTTP {code}: {e}")),
        // No HTTP status: the request never got an answer (connection refused, DNS, TLS).
        None => StorageError::Unavailable(format!("{bucket}/{object}: {e}")),
    }
}

/// Errors of the control-plane client, which speaks gRPC: its status code, not an HTTP one.
fn classify_listing(bucket: &BucketName, e: google_cloud_storage::Error) -> StorageError {
    use google_cloud_gax::error::rpc::Code;
    let Some(status) = e.status() else {
        return classify(bucket, "", e);
    };
    match status.code {
        Code::NotFound => StorageError::BucketNotFound(bucket.to_string()),
        Code::PermissionDenied | Code::Unauthenticated => {
            StorageError::Refused(format!("listing {bucket}: permission denied"))
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted | Code::Internal => {
            StorageError::Unavailable(format!("listing {bucket}: {e}"))
        }
        _ => StorageError::Other(format!("listing {bucket}: {e}")),
    }
}

/// The JSON API's listing (`storage#objects`); int64 fields arrive as strings.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonListing {
    #[serde(default)]
    items: Vec<JsonObject>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonObject {
    name: String,
    generation: serde_json::Value,
    #[serde(default)]
    size: serde_json::Value,
    updated: Option<String>,
    content_type: Option<String>,
}

fn json_int(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

impl JsonObject {
    fn into_info(self, bucket: &BucketName) -> Result<ObjectInfo, StorageError> {
        let malformed =
            |what: &str| StorageError::Other(format!("listing {bucket}: {what} of {:?} is malformed", self.name));
        let generation = json_int(&self.generation).ok_or_else(|| malformed("the generation"))?;
        let size = u64::try_from(json_int(&self.size).unwrap_or(0)).unwrap_or(0);
        let updated = match self.updated.as_deref() {
            Some(t) => crate::domain::time::parse_rfc3339(t).map_err(|_| malformed("the updated time"))?,
            None => std::time::UNIX_EPOCH,
        };
        Ok(ObjectInfo {
            name: self.name,
            generation,
            size,
            updated,
            content_type: self.content_type.filter(|t| !t.is_empty()),
        })
    }
}

impl GcsStore {
    async fn list_control(
        control: &StorageControl,
        bucket: &BucketName,
        query: &ListQuery,
    ) -> Result<ObjectPage, StorageError> {
        let response = control
            .list_objects()
            .set_parent(Self::bucket_path(bucket))
            .set_prefix(query.prefix.clone())
            .set_page_size(i32::try_from(query.limit()).unwrap_or(1000))
            .set_page_token(query.page_token.clone().unwrap_or_default())
            .set_lexicographic_start(query.start_after.clone().unwrap_or_default())
            .send()
            .await
            .map_err(|e| classify_listing(bucket, e))?;
        let objects = response
            .objects
            .into_iter()
            .filter(|o| query.wants(&o.name))
            .map(|o| ObjectInfo {
                updated: o
                    .update_time
                    .and_then(|t| std::time::SystemTime::try_from(t).ok())
                    .unwrap_or(std::time::UNIX_EPOCH),
                size: u64::try_from(o.size).unwrap_or(0),
                generation: o.generation,
                content_type: Some(o.content_type).filter(|t| !t.is_empty()),
                name: o.name,
            })
            .collect();
        Ok(ObjectPage {
            objects,
            next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    async fn list_json(
        http: &reqwest::Client,
        endpoint: &str,
        bucket: &BucketName,
        query: &ListQuery,
    ) -> Result<ObjectPage, StorageError> {
        let mut url = reqwest::Url::parse(&format!("{endpoint}/storage/v1/b/{bucket}/o"))
            .map_err(|e| StorageError::Other(format!("the emulator's listing URL: {e}")))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("prefix", &query.prefix)
                .append_pair("maxResults", &query.limit().to_string())
                .append_pair(
                    "fields",
                    "items(name,generation,size,updated,contentType),nextPageToken",
                );
            if let Some(token) = &query.page_token {
                pairs.append_pair("pageToken", token);
            }
            if let Some(after) = &query.start_after {
                pairs.append_pair("startOffset", after);
            }
        }
        let response = http
            .get(url)
            .send()
            .await
            .map_err(|e| StorageError::Unavailable(format!("listing {bucket}: {e}")))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            404 => return Err(StorageError::BucketNotFound(bucket.to_string())),
            401 | 403 => return Err(StorageError::Refused(format!("listing {bucket}: permission denied"))),
            429 | 500.. => return Err(StorageError::Unavailable(format!("listing {bucket}: HTTP {status}"))),
            _ => return Err(StorageError::Other(format!("listing {bucket}: HTTP {status}"))),
        }
        let listing: JsonListing = response
            .json()
            .await
            .map_err(|e| StorageError::Unavailable(format!("listing {bucket}: the answer cannot be read: {e}")))?;
        let objects = listing
            .items
            .into_iter()
            .filter(|o| query.wants(&o.name))
            .map(|o| o.into_info(bucket))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ObjectPage {
            objects,
            next_page_token: listing.next_page_token.filter(|t| !t.is_empty()),
        })
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

    async fn list(&self, bucket: &BucketName, query: &ListQuery) -> Result<ObjectPage, StorageError> {
        with_timeout("listing", async {
            match &self.lister {
                Lister::Control(control) => Self::list_control(control, bucket, query).await,
                Lister::Json { http, endpoint } => {
                    // The same patience as the official client's retry policy (3 attempts,
                    // within 8 s), which this hand-made request does not go through.
                    let mut attempt = 1;
                    loop {
                        match Self::list_json(http, endpoint, bucket, query).await {
                            Err(StorageError::Unavailable(why)) if attempt < 3 => {
                                tracing::warn!(attempt, %why, "listing failed; trying again");
                                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                                attempt += 1;
                            }
                            other => break other,
                        }
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_worth_a_retry() {
        let bucket = BucketName::parse("uploads").unwrap();
        let answer = |code: u16| {
            classify(
                &bucket,
                "a.jpg",
                google_cloud_storage::Error::http(code, http::HeaderMap::new(), Bytes::new()),
            )
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(answer(code).is_transient(), "HTTP {code}");
        }
        assert!(matches!(answer(404), StorageError::NotFound { .. }));
        assert!(matches!(answer(403), StorageError::Refused(_)));
        // Any other refusal is this object's answer for good: a per-photo reason, not a 503.
        for code in [400, 405, 409, 411, 412, 416, 451] {
            let e = answer(code);
            assert!(matches!(e, StorageError::Unreadable(_)), "HTTP {code}: {e}");
            assert!(!e.is_transient());
        }
    }
}
