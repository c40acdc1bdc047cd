//! Asking the embedding service to compute features (Cloud Run: the analysis functions
//! have no image encoder of their own). It answers once the features are in the shared
//! cache, so the caller re-reads them from there; photos it could not read come back with
//! their reasons.
//!
//! Authentication: the functions accept IAM-authenticated callers only, so a call to an
//! `https://` service (Cloud Run) carries an ID token for that URL. The token comes from
//! `google-cloud-auth`'s ID-token credentials (the metadata server on Cloud Run, or the
//! service account of `GOOGLE_APPLICATION_CREDENTIALS`), which cache it and refresh it before
//! it expires: one metadata request per hour or so, not one per call. A plain `http://`
//! service (a local `ongi serve`, the tests) gets no token, and none is fetched.

use std::collections::HashMap;
use std::time::Duration;

use google_cloud_auth::credentials::idtoken::{self, IDTokenCredentials};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::photo_error::PhotoError;
use crate::domain::Reason;

#[derive(Clone)]
pub struct EmbeddingClient {
    base: String,
    http: reqwest::Client,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    /// Plain HTTP: no token.
    None,
    /// Application Default Credentials for the service's URL, built on the first call (the
    /// credentials start a refresh task, which needs the runtime).
    Adc(std::sync::Arc<OnceCell<IDTokenCredentials>>),
    /// Given credentials (tests: the metadata server's protocol on a local port).
    #[cfg(test)]
    Given(IDTokenCredentials),
}

#[derive(Deserialize)]
struct InvalidImage {
    image: String,
    reason: String,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    invalid_images: Vec<InvalidImage>,
}

/// The reasons the embedding service answers for a photo it could not read; anything else
/// is `unreadable`.
fn known_reason(r: &str) -> Reason {
    match Reason::parse(r) {
        Some(
            reason @ (Reason::Empty
            | Reason::Corrupt
            | Reason::UnsupportedFormat
            | Reason::TooLarge
            | Reason::DecodeTimeout
            | Reason::NotFound
            | Reason::Refused),
        ) => reason,
        _ => Reason::Unreadable,
    }
}

impl EmbeddingClient {
    /// A client for the embedding service at `base`; calls to an `https://` URL carry an ID
    /// token from Application Default Credentials.
    pub fn new(base: &str) -> Self {
        let auth = if base.starts_with("https://") {
            Auth::Adc(std::sync::Arc::new(OnceCell::new()))
        } else {
            Auth::None
        };
        Self::with_auth(base, auth)
    }

    /// A client whose calls carry ID tokens from `credentials`, whatever the URL's scheme.
    #[cfg(test)]
    pub fn with_id_tokens(base: &str, credentials: IDTokenCredentials) -> Self {
        Self::with_auth(base, Auth::Given(credentials))
    }

    fn with_auth(base: &str, auth: Auth) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            auth,
        }
    }

    /// The ID token for this call (cached by the credentials), or `None` without auth.
    async fn id_token(&self) -> Result<Option<String>, String> {
        let credentials = match &self.auth {
            Auth::None => return Ok(None),
            #[cfg(test)]
            Auth::Given(credentials) => credentials,
            Auth::Adc(cell) => {
                cell.get_or_try_init(|| async {
                    idtoken::Builder::new(self.base.clone())
                        .build()
                        .map_err(|e| format!("cannot set up ID tokens for {}: {e}", self.base))
                })
                .await?
            }
        };
        credentials
            .id_token()
            .await
            .map(Some)
            .map_err(|e| format!("no ID token for {}: {e}", self.base))
    }

    /// Computes features for `refs`; returns the photos the service could not read.
    pub async fn embed(&self, refs: &[String]) -> Result<HashMap<String, PhotoError>, PhotoError> {
        let unavailable = |detail: String| PhotoError {
            reason: Reason::EmbeddingUnavailable,
            detail,
            transient: true,
        };
        let mut request = self
            .http
            .post(format!("{}/api/albums/embedding", self.base))
            .json(&serde_json::json!({ "images": refs }));
        if let Some(token) = self.id_token().await.map_err(unavailable)? {
            request = request.bearer_auth(token.trim());
        }
        // EMBEDDING_URL may carry credentials, and reqwest's errors quote the URL: errors name
        // the service redacted (they reach logs and per-photo details).
        let shown = crate::config::redact_url(&self.base);
        let resp = request
            .send()
            .await
            .map_err(|e| unavailable(format!("{shown}: {}", e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(unavailable(format!("{shown} answered {status}")));
        }
        let answer: Answer = resp
            .json()
            .await
            .map_err(|e| unavailable(format!("{shown}: {}", e.without_url())))?;
        Ok(answer
            .invalid_images
            .into_iter()
            .map(|i| {
                let err = PhotoError {
                    reason: known_reason(&i.reason),
                    detail: i.detail.unwrap_or(i.reason),
                    transient: false,
                };
                (i.image, err)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// A JWT whose payload says it expires in an hour (the signature is never checked here).
    fn id_token(audience: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.{}",
            part(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            part(serde_json::json!({"aud": audience, "exp": exp, "iss": "https://accounts.google.com"})),
            URL_SAFE_NO_PAD.encode(b"signature")
        )
    }

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// The metadata server's identity endpoint: counts its calls, answers a fresh token for
    /// the audience asked.
    async fn metadata_server(calls: Arc<AtomicUsize>) -> String {
        let app = Router::new()
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/identity",
                get(
                    |State(calls): State<Arc<AtomicUsize>>,
                     headers: HeaderMap,
                     Query(q): Query<HashMap<String, String>>| async move {
                        assert_eq!(headers.get("metadata-flavor").unwrap(), "Google");
                        calls.fetch_add(1, Ordering::SeqCst);
                        id_token(&q["audience"])
                    },
                ),
            )
            .with_state(calls);
        serve(app).await
    }

    /// The embedding service: records the Authorization header of each call.
    async fn embedding_service(seen: Arc<Mutex<Vec<Option<String>>>>) -> String {
        let app = Router::new()
            .route(
                "/api/albums/embedding",
                post(
                    |State(seen): State<Arc<Mutex<Vec<Option<String>>>>>, headers: HeaderMap| async move {
                        let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
                        seen.lock().unwrap().push(auth);
                        (
                            axum::http::StatusCode::CREATED,
                            axum::Json(serde_json::json!({"message": "success", "data": null})),
                        )
                    },
                ),
            )
            .with_state(seen);
        serve(app).await
    }

    #[tokio::test]
    async fn the_id_token_is_fetched_once_and_reused_for_later_calls() {
        let calls = Arc::new(AtomicUsize::new(0));
        let metadata = metadata_server(calls.clone()).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = embedding_service(seen.clone()).await;
        let credentials = idtoken::mds::Builder::new(service.clone())
            .with_endpoint(metadata)
            .build()
            .unwrap();
        let client = EmbeddingClient::with_id_tokens(&service, credentials);

        for _ in 0..5 {
            let invalid = client.embed(&["a.jpg".to_owned()]).await.unwrap();
            assert!(invalid.is_empty());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one metadata request for five calls");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5);
        let first = seen[0].as_deref().expect("the call carries a token");
        assert!(first.starts_with("Bearer ey"), "{first}");
        assert!(seen.iter().all(|a| a.as_deref() == Some(first)), "{seen:?}");
        // The token is for the embedding service's URL.
        let payload = first.trim_start_matches("Bearer ").split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["aud"], service.as_str());
    }

    #[tokio::test]
    async fn a_plain_http_service_gets_no_token() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = embedding_service(seen.clone()).await;
        let client = EmbeddingClient::new(&service);
        assert!(matches!(client.auth, Auth::None));
        client.embed(&["a.jpg".to_owned()]).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![None]);
        assert!(matches!(
            EmbeddingClient::new("https://embedding-abc.a.run.app").auth,
            Auth::Adc(_)
        ));
    }

    #[tokio::test]
    async fn no_token_means_the_call_is_not_made_and_the_photo_is_transient() {
        // A metadata server that refuses: the call must fail clearly (Cloud Run would answer
        // 403 to a call without a token), not go out unauthenticated.
        let app = Router::new().route(
            "/computeMetadata/v1/instance/service-accounts/default/identity",
            get(|| async { (axum::http::StatusCode::NOT_FOUND, "no such service account") }),
        );
        let metadata = serve(app).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = embedding_service(seen.clone()).await;
        let credentials = idtoken::mds::Builder::new(service.clone())
            .with_endpoint(metadata)
            .build()
            .unwrap();
        let client = EmbeddingClient::with_id_tokens(&service, credentials);
        let err = client.embed(&["a.jpg".to_owned()]).await.unwrap_err();
        assert_eq!(err.reason, "embedding_unavailable");
        assert!(err.transient);
        assert!(err.detail.contains("no ID token"), "{}", err.detail);
        assert!(seen.lock().unwrap().is_empty(), "no unauthenticated call went out");
    }
}
