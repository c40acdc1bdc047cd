//! The style job queue on Redis (DESIGN.md flow C and "Redis layout").
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

pub mod job;
mod scripts;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use sha2::{Digest, Sha256};

pub use job::{JobRecord, JobSpec, JobStatus, now_ms};

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

    /// A connection for one worker's blocking reads. `XREADGROUP … BLOCK` holds its
    /// connection, so it gets its own, with a response timeout longer than the block (the
    /// client's default of 500 ms would cut every blocking read short).
    pub async fn worker(&self, consumer: &str, block: Duration) -> Result<WorkerQueue, QueueError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(block + Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let blocking = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| QueueError::Protocol(format!("cannot configure the Redis connection: {e}")))?;
        let worker = WorkerQueue {
            queue: self.clone(),
            blocking,
            consumer: consumer.to_owned(),
            block,
        };
        worker.ensure_group().await?;
        Ok(worker)
    }
}

/// One worker's side of the queue: claim, heartbeat, complete, fail, release.
#[derive(Clone)]
pub struct WorkerQueue {
    queue: StyleQueue,
    blocking: ConnectionManager,
    consumer: String,
    block: Duration,
}

impl WorkerQueue {
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn queue(&self) -> &StyleQueue {
        &self.queue
    }

    /// Creates the stream and the group if absent (a worker may start before any job).
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut con = self.queue.commands.clone();
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.queue.stream_key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// Removes the group's consumers that hold no entry and have been silent for
    /// `idle_after` (workers that died or stopped), and this worker itself when `leaving`
    /// and it holds nothing. Returns how many were removed.
    pub async fn prune_consumers(&self, idle_after: Duration, leaving: bool) -> Result<u64, QueueError> {
        let mut con = self.queue.commands.clone();
        scripts::PRUNE_CONSUMERS
            .key(self.queue.stream_key())
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(u64::try_from(idle_after.as_millis()).unwrap_or(u64::MAX))
            .arg(if leaving { "1" } else { "0" })
            .invoke_async(&mut con)
            .await
            .map_err(classify)
    }

    /// The group's consumers, by name (for the tests and the logs).
    pub async fn consumers(&self) -> Result<Vec<String>, QueueError> {
        let mut con = self.queue.commands.clone();
        let reply: Result<redis::streams::StreamInfoConsumersReply, redis::RedisError> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(self.queue.stream_key())
            .arg(GROUP)
            .query_async(&mut con)
            .await;
        match reply {
            Ok(r) => Ok(r.consumers.into_iter().map(|c| c.name).collect()),
            Err(e) if e.code() == Some("NOGROUP") => Ok(Vec::new()),
            Err(e) => Err(classify(e)),
        }
    }

    /// Takes the next job: first one abandoned by a dead worker (idle past `reclaim_after`),
    /// else a new one, waiting up to the block time for it.
    pub async fn claim(&self, reclaim_after: Duration) -> Result<ClaimOutcome, QueueError> {
        let mut con = self.queue.commands.clone();
        let stream = self.queue.stream_key();
        let reclaimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(u64::try_from(reclaim_after.as_millis()).unwrap_or(u64::MAX))
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut con)
            .await
            .map_err(classify)?;
        if let Some(entry) = reclaimed.claimed.into_iter().next() {
            let job_id = entry.get::<String>("job").unwrap_or_default();
            return self.start(entry.id, job_id, true).await;
        }
        let mut blocking = self.blocking.clone();
        let read: Result<Option<StreamReadReply>, redis::RedisError> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(u64::try_from(self.block.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut blocking)
            .await;
        let read = match read {
            Ok(r) => r,
            // The stream was deleted under us (FLUSHDB, a new Redis): recreate and go on.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                return Ok(ClaimOutcome::Idle);
            }
            Err(e) => return Err(classify(e)),
        };
        let entry = read
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next());
        match entry {
            Some(entry) => {
                let job_id = entry.get::<String>("job").unwrap_or_default();
                self.start(entry.id, job_id, false).await
            }
            None => Ok(ClaimOutcome::Idle),
        }
    }

    /// Runs one of the worker-side scripts on an entry this worker claims to own, with the
    /// layout they share (see [`scripts`]) and the script's own arguments after it.
    async fn owned<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        entry_id: &str,
        job_id: &str,
        own: &[String],
    ) -> Result<T, QueueError> {
        let q = &self.queue;
        let mut con = q.commands.clone();
        let mut call = script.prepare_invoke();
        call.key(q.stream_key())
            .key(q.job_key(job_id))
            .key(q.dead_key())
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(entry_id)
            .arg(job_id)
            .arg(now_ms());
        for a in own {
            call.arg(a);
        }
        call.invoke_async(&mut con).await.map_err(classify)
    }

    async fn start(&self, entry_id: String, job_id: String, reclaimed: bool) -> Result<ClaimOutcome, QueueError> {
        let q = &self.queue;
        let own = [
            q.max_attempts.to_string(),
            q.ttl_ms().to_string(),
            q.dead_letter_cap.to_string(),
        ];
        let answer: Vec<String> = self.owned(&scripts::START, &entry_id, &job_id, &own).await?;
        match answer.first().map(String::as_str) {
            Some("started") => {
                let attempt = answer.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
                match q.get(&job_id).await? {
                    Some(job) => Ok(ClaimOutcome::Run(Box::new(Claimed {
                        entry_id,
                        job,
                        attempt,
                        reclaimed,
                    }))),
                    None => Ok(ClaimOutcome::Idle),
                }
            }
            Some("dead") => {
                metrics::counter!("ongi_style_jobs_total", "outcome" => "dead_letter").increment(1);
                Ok(ClaimOutcome::DeadLettered {
                    job_id,
                    error: answer.get(1).cloned().unwrap_or_default(),
                })
            }
            Some("lost" | "gone" | "finished") => Ok(ClaimOutcome::Idle),
            _ => Err(QueueError::Protocol(format!("start answered {answer:?}"))),
        }
    }

    /// Keeps a running job's entry from being reclaimed. `false`: the job is no longer ours.
    pub async fn heartbeat(&self, claimed: &Claimed) -> Result<bool, QueueError> {
        let owned: i64 = self
            .owned(&scripts::HEARTBEAT, &claimed.entry_id, &claimed.job.id, &[])
            .await?;
        Ok(owned == 1)
    }

    /// Marks the job done with its result. `false`: it was no longer ours, nothing changed.
    pub async fn complete(&self, claimed: &Claimed, result_object: &str) -> Result<bool, QueueError> {
        let own = [result_object.to_owned(), self.queue.ttl_ms().to_string()];
        let owned: i64 = self
            .owned(&scripts::COMPLETE, &claimed.entry_id, &claimed.job.id, &own)
            .await?;
        Ok(owned == 1)
    }

    /// Records a failed attempt: another attempt, or the dead-letter stream.
    pub async fn fail(&self, claimed: &Claimed, error: &str) -> Result<FailOutcome, QueueError> {
        let q = &self.queue;
        let own = [
            error.to_owned(),
            q.max_attempts.to_string(),
            q.ttl_ms().to_string(),
            q.dead_letter_cap.to_string(),
        ];
        let answer: Vec<String> = self
            .owned(&scripts::FAIL, &claimed.entry_id, &claimed.job.id, &own)
            .await?;
        match answer.first().map(String::as_str) {
            Some("retry") => Ok(FailOutcome::Retrying),
            Some("dead") => Ok(FailOutcome::DeadLettered),
            Some("lost") => Ok(FailOutcome::Lost),
            _ => Err(QueueError::Protocol(format!("fail answered {answer:?}"))),
        }
    }

    /// Gives an unfinished job back (the worker is stopping); the attempt does not count.
    pub async fn release(&self, claimed: &Claimed) -> Result<bool, QueueError> {
        let owned: i64 = self
            .owned(&scripts::RELEASE, &claimed.entry_id, &claimed.job.id, &[])
            .await?;
        Ok(owned == 1)
    }
}
