//! The style job queue on Redis (docs/style.md; its keys are in docs/architecture.md, "Redis layout").
//!
//! - A stream `{prefix}style:v1:jobs` with the consumer group `gpu-job`: one entry per
//!   attempt to make, holding only the job id. Entries are acknowledged *and deleted* when an
//!   attempt ends, so the stream's length is the number of jobs queued or running: the depth
//!   that the submission limit and the metric read.
//! - A hash per job, `{prefix}style:v1:job:<id>` ([`job::JobRecord`]): status, attempts,
//!   timings, prompt, result object, last error. A queued or running job's hash has no TTL,
//!   so Memorystore's `volatile-lru` never evicts it with the feature records; finished jobs
//!   (done or failed) expire after the job TTL.
//! - `{prefix}style:v1:idem:<sha256 of the key>` → job id, so a repeated submission with the
//!   same idempotency key returns the same job.
//! - A dead-letter stream `{prefix}style:v1:dead`: jobs whose attempts are spent, with their
//!   last error; at most [`DEAD_LETTER_CAP`] entries, the oldest dropped first (the job's own
//!   hash, with its status and error, stays for the job TTL).
//!
//! Each worker process joins the group under a name of its own; names that hold nothing and
//! have been silent past the reclaim timeout are removed ([`WorkerQueue::prune_consumers`]),
//! and a worker that stops removes its own.
//!
//! A claimed entry whose worker stops sending heartbeats is idle; once it has been idle for
//! the reclaim timeout another worker takes it over with `XAUTOCLAIM`. Every state change is
//! a Lua script ([`scripts`]) that first checks the caller still owns the entry.

pub(crate) mod job;
mod scripts;
mod worker;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

pub use job::{JobRecord, JobSpec, JobStatus, now_ms};
pub use worker::WorkerQueue;

/// The consumer group every worker joins.
pub const GROUP: &str = "gpu-job";

/// The dead-letter stream's length cap: far more failed jobs than anyone inspects, and a
/// bound on what a burst of failing jobs can write to Redis.
pub const DEAD_LETTER_CAP: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the style queue (Redis) is unavailable: {0}")]
    Unavailable(String),
    #[error("the style queue answered something unexpected: {0}")]
    Protocol(String),
    #[error(transparent)]
    Malformed(#[from] job::MalformedJob),
}

fn classify(e: redis::RedisError) -> QueueError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        QueueError::Unavailable(e.to_string())
    } else {
        QueueError::Protocol(e.to_string())
    }
}

/// What a submission came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// A new job was queued.
    Queued(String),
    /// The idempotency key already names this job.
    Existing(String),
    /// The queue holds `depth` jobs, at or over the limit: nothing was queued.
    Full { depth: u64 },
}

/// A stream entry this worker now owns, and the job it carries.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub entry_id: String,
    pub job: JobRecord,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// Taken over from a worker that stopped sending heartbeats.
    pub reclaimed: bool,
}

/// What claiming found.
#[derive(Debug, Clone)]
pub enum ClaimOutcome {
    /// Run this job.
    Run(Box<Claimed>),
    /// A job whose attempts were all abandoned by dead workers went to the dead-letter stream.
    DeadLettered { job_id: String, error: String },
    /// Nothing to do (the block timeout passed, or the entry led nowhere).
    Idle,
}

/// How a failed attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back on the stream for another attempt.
    Retrying,
    /// Its attempts are spent: on the dead-letter stream, status `failed`.
    DeadLettered,
    /// The entry was no longer this worker's (another worker reclaimed it): nothing changed.
    Lost,
}

#[derive(Clone)]
pub struct StyleQueue {
    commands: ConnectionManager,
    client: redis::Client,
    prefix: String,
    max_attempts: u32,
    job_ttl: Duration,
    dead_letter_cap: u64,
}

impl StyleQueue {
    /// Does not connect: the first command does (the process starts while Redis is down).
    pub fn new(url: &str, prefix: &str, max_attempts: u32, job_ttl: Duration) -> Result<Self, QueueError> {
        let client = redis::Client::open(url).map_err(|e| QueueError::Protocol(format!("REDIS_URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| QueueError::Protocol(format!("cannot configure the Redis connection: {e}")))?;
        Ok(Self {
            commands,
            client,
            prefix: prefix.to_owned(),
            max_attempts,
            job_ttl,
            dead_letter_cap: DEAD_LETTER_CAP,
        })
    }

    /// The same queue with another dead-letter cap (tests: a cap they can reach).
    pub fn with_dead_letter_cap(mut self, cap: u64) -> Self {
        self.dead_letter_cap = cap.max(1);
        self
    }

    pub fn stream_key(&self) -> String {
        format!("{}style:v1:jobs", self.prefix)
    }

    pub fn dead_key(&self) -> String {
        format!("{}style:v1:dead", self.prefix)
    }

    fn job_key(&self, id: &str) -> String {
        format!("{}style:v1:job:{id}", self.prefix)
    }

    /// The key is hashed: it is the caller's string, of any length and content.
    fn idempotency_key(&self, key: &str) -> String {
        format!(
            "{}style:v1:idem:{}",
            self.prefix,
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.job_ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// The job an idempotency key already names, if any.
    pub async fn find_idempotent(&self, key: &str) -> Result<Option<String>, QueueError> {
        let mut con = self.commands.clone();
        redis::cmd("GET")
            .arg(self.idempotency_key(key))
            .query_async(&mut con)
            .await
            .map_err(classify)
    }

    /// Queues a job unless the key names one already or the queue is full, in one step.
    pub async fn submit(
        &self,
        id: &str,
        spec: &JobSpec,
        idempotency_key: Option<&str>,
        max_depth: u64,
    ) -> Result<Submitted, QueueError> {
        let mut con = self.commands.clone();
        let mut call = scripts::SUBMIT.prepare_invoke();
        call.key(self.stream_key())
            .key(self.job_key(id))
            .key(self.idempotency_key(idempotency_key.unwrap_or("")))
            .arg(GROUP)
            .arg(id)
            .arg(max_depth)
            .arg(self.ttl_ms())
            .arg(if idempotency_key.is_some() { "1" } else { "0" })
            .arg(now_ms());
        for (field, value) in spec.fields() {
            call.arg(field).arg(value);
        }
        let answer: Vec<String> = call.invoke_async(&mut con).await.map_err(classify)?;
        match answer.as_slice() {
            [kind, id] if kind == "queued" => {
                metrics::counter!("ongi_style_jobs_submitted_total").increment(1);
                Ok(Submitted::Queued(id.clone()))
            }
            [kind, id] if kind == "existing" => Ok(Submitted::Existing(id.clone())),
            [kind, depth] if kind == "full" => Ok(Submitted::Full {
                depth: depth.parse().unwrap_or(max_depth),
            }),
            other => Err(QueueError::Protocol(format!("submit answered {other:?}"))),
        }
    }

    /// A job by id; `None` when it does not exist or has expired.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let mut con = self.commands.clone();
        let hash: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.job_key(id))
            .query_async(&mut con)
            .await
            .map_err(classify)?;
        Ok(JobRecord::from_hash(id, &hash)?)
    }

    /// Jobs queued or running.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        self.len(&self.stream_key()).await
    }

    /// Jobs on the dead-letter stream.
    pub async fn dead_letters(&self) -> Result<u64, QueueError> {
        self.len(&self.dead_key()).await
    }

    async fn len(&self, key: &str) -> Result<u64, QueueError> {
        let mut con = self.commands.clone();
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut con)
            .await
            .map_err(classify)
    }

    /// The dead-letter entries, oldest first: (job id, error, attempts).
    pub async fn dead_letter_entries(&self) -> Result<Vec<(String, String, u32)>, QueueError> {
        let mut con = self.commands.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.dead_key())
            .arg("-")
            .arg("+")
            .query_async(&mut con)
            .await
            .map_err(classify)?;
        Ok(reply
            .ids
            .iter()
            .map(|e| {
                (
                    e.get::<String>("job").unwrap_or_default(),
                    e.get::<String>("error").unwrap_or_default(),
                    e.get::<String>("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
                )
            })
            .collect())
    }
}
