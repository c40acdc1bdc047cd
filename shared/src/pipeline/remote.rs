//! Asking the embedding service to compute features (Cloud Run: the analysis functions
//! have no image encoder of their own). It answers once the features are in the shared
//! cache, so the caller re-reads them from there; photos it could not read come back with
//! their reasons. On Cloud Run the call carries an ID token from the metadata server, since
//! the functions accept IAM-authenticated callers only.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::service::PhotoError;

#[derive(Clone)]
pub struct EmbeddingClient {
    base: String,
    http: reqwest::Client,
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

/// The reasons the embedding service knows, as the static strings `PhotoError` carries.
fn known_reason(r: &str) -> &'static str {
    match r {
        "empty" => "empty",
        "corrupt" => "corrupt",
        "unsupported_format" => "unsupported_format",
        "too_large" => "too_large",
        "not_found" => "not_found",
        "refused" => "refused",
        _ => "unreadable",
    }
}

impl EmbeddingClient {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// An ID token for the embedding service's URL, from the metadata server (Cloud Run).
    /// `None` off Google Cloud (local tests call an unauthenticated service).
    async fn id_token(&self) -> Option<String> {
        let url = format!(
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience={}",
            self.base
        );
        let resp = self
            .http
            .get(url)
            .header("Metadata-Flavor", "Google")
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        resp.status().is_success().then_some(())?;
        resp.text().await.ok()
    }

    /// Computes features for `refs`; returns the photos the service could not read.
    pub async fn embed(&self, refs: &[String]) -> Result<HashMap<String, PhotoError>, PhotoError> {
        let unavailable = |detail: String| PhotoError {
            reason: "embedding_unavailable",
            detail,
            transient: true,
        };
        let mut request = self
            .http
            .post(format!("{}/api/albums/embedding", self.base))
            .json(&serde_json::json!({ "images": refs }));
        if let Some(token) = self.id_token().await {
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
