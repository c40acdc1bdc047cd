//! One worker's side of the queue ([`WorkerQueue`]): claiming, heartbeats, completing, failing
//! and releasing entries through the ownership-checked scripts. Apart from `mod.rs`, which
//! keeps the submitting and reading side ([`StyleQueue`]) that the API uses.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamReadReply};

use super::{ClaimOutcome, Claimed, FailOutcome, GROUP, QueueError, StyleQueue, classify, now_ms, scripts};

impl StyleQueue {
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
