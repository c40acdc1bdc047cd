//! Publishing to Pub/Sub with the official client: `ongi-features` once a photo's features
//! are cached (its push subscriptions feed the per-photo steps). Without Pub/Sub settings
//! (`ongi serve` on a laptop) messages are only logged.

use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_pubsub::client::Publisher as PubSubClient;
use google_cloud_pubsub::model::Message;
use serde::Serialize;

use crate::config::parse::with_http_scheme;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot create the Pub/Sub publisher for {topic}: {reason}")]
    Setup { topic: String, reason: String },
    #[error("publishing to {topic} failed: {reason}")]
    Publish { topic: String, reason: String },
}

#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one message; returns the message id.
    async fn publish(&self, data: Bytes, attributes: Vec<(String, String)>) -> Result<String, PublishError>;
    fn kind(&self) -> &'static str;
}

/// A Pub/Sub topic (`projects/P/topics/T`), on Google Cloud or on the emulator.
pub struct PubSubPublisher {
    client: PubSubClient,
    topic: String,
}

impl PubSubPublisher {
    pub async fn new(project: &str, topic: &str, emulator: Option<&str>) -> Result<Self, PublishError> {
        let name = format!("projects/{project}/topics/{topic}");
        let mut builder = PubSubClient::builder(name.clone());
        if let Some(host) = emulator {
            builder = builder
                .with_endpoint(with_http_scheme(host))
                .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
        }
        let client = builder.build().await.map_err(|e| PublishError::Setup {
            topic: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { client, topic: name })
    }
}

#[async_trait]
impl Publisher for PubSubPublisher {
    async fn publish(&self, data: Bytes, attributes: Vec<(String, String)>) -> Result<String, PublishError> {
        let message = Message::new().set_data(data).set_attributes(attributes);
        let published = tokio::time::timeout(std::time::Duration::from_secs(30), self.client.publish(message)).await;
        match published {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(PublishError::Publish {
                topic: self.topic.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(PublishError::Publish {
                topic: self.topic.clone(),
                reason: "no answer within 30 s".into(),
            }),
        }
    }

    fn kind(&self) -> &'static str {
        "pubsub"
    }
}

/// A Pub/Sub topic on Cloud Run or the emulator, when this process publishes to it
/// (`settings.publish`, and `used_here`); otherwise messages are only logged.
pub async fn for_topic(
    settings: &crate::config::Settings,
    topic: &str,
    used_here: bool,
) -> Result<std::sync::Arc<dyn Publisher>, PublishError> {
    match (&settings.google_cloud_project, settings.publish && used_here) {
        (Some(project), true) => Ok(std::sync::Arc::new(
            PubSubPublisher::new(project, topic, settings.pubsub_emulator_host.as_deref()).await?,
        )),
        _ => Ok(std::sync::Arc::new(LogPublisher)),
    }
}

/// Publishes `message` as JSON. A failure is an outage (the caller answers 503, so the
/// delivery that led here is retried).
pub async fn publish_json(
    publisher: &dyn Publisher,
    message: &impl Serialize,
    attributes: Vec<(String, String)>,
) -> Result<String, PublishError> {
    let data = serde_json::to_vec(message).map_err(|e| PublishError::Publish {
        topic: publisher.kind().to_owned(),
        reason: format!("cannot serialise the message: {e}"),
    })?;
    publisher.publish(Bytes::from(data), attributes).await
}

/// No Pub/Sub configured: the message is logged, nothing is sent.
pub struct LogPublisher;

#[async_trait]
impl Publisher for LogPublisher {
    async fn publish(&self, data: Bytes, _attributes: Vec<(String, String)>) -> Result<String, PublishError> {
        tracing::debug!(message = %String::from_utf8_lossy(&data), "no Pub/Sub configured; not published");
        Ok(String::new())
    }

    fn kind(&self) -> &'static str {
        "log"
    }
}

/// The `ongi-features` message (schema `ongi.features.v1`): which object's features are
/// now in the cache, under which content hash and model id.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FeaturesMessage {
    pub schema: String,
    pub bucket: String,
    pub object: String,
    pub generation: i64,
    pub content_hash: String,
    pub model: String,
    /// Whether this delivery computed them (false: they were already cached).
    pub computed: bool,
}

pub const FEATURES_SCHEMA: &str = "ongi.features.v1";

impl FeaturesMessage {
    pub fn new(bucket: &str, object: &str, generation: i64, content_hash: String, model: &str, computed: bool) -> Self {
        Self {
            schema: FEATURES_SCHEMA.to_owned(),
            bucket: bucket.to_owned(),
            object: object.to_owned(),
            generation,
            content_hash,
            model: model.to_owned(),
            computed,
        }
    }

    /// The message's Pub/Sub attributes (subscriptions can filter on them).
    pub fn attributes(&self) -> Vec<(String, String)> {
        vec![
            ("schema".to_owned(), FEATURES_SCHEMA.to_owned()),
            ("bucket".to_owned(), self.bucket.clone()),
            ("object".to_owned(), self.object.clone()),
        ]
    }
}

pub const RESULTS_SCHEMA: &str = "ongi.results.v1";

/// The `ongi-results` message (schema `ongi.results.v1`): one function's per-photo result for
/// one object generation. `result` is, per function:
/// - `category`: `{"tags": [{"category", "similarity"}]}`, the photo's best base tags above
///   the floor (at most 3), best first;
/// - `quality`: `{"low_quality", "reasons", "metrics"}` as `quality?detail=true`;
/// - `score`: `{"score"}`, the aesthetic score;
/// - `people`: `{"faces": [{"bbox": [x1, y1, x2, y2], "score", "quality"}]}`, the faces found
///   (their embeddings stay in the cache, for `POST /api/albums/people`).
///
/// A consumer may receive one result twice (the per-photo flow publishes before it stores, so
/// a process stopped between the two publishes again on redelivery): it keys results on
/// bucket, object, generation and module.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ResultsMessage {
    pub schema: String,
    /// The function whose result this is (`category`, `quality`, `score`, `people`).
    pub module: String,
    pub bucket: String,
    pub object: String,
    pub generation: i64,
    /// SHA-256 hex of the photo's bytes.
    pub content_hash: String,
    pub model: String,
    pub result: serde_json::Value,
}

impl ResultsMessage {
    /// The message's Pub/Sub attributes (subscriptions can filter on them).
    pub fn attributes(&self) -> Vec<(String, String)> {
        vec![
            ("schema".to_owned(), RESULTS_SCHEMA.to_owned()),
            ("module".to_owned(), self.module.clone()),
        ]
    }
}
