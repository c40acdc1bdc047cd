//! The style queue against the real Redis: idempotency, the depth limit, claiming,
//! heartbeats, reclaiming a dead worker's job (and refusing the old owner), retries, the
//! dead-letter stream and its cap, and the consumers of workers that are gone.

use std::time::Duration;

use ongi_shared::queue::{ClaimOutcome, Claimed, FailOutcome, JobSpec, JobStatus, StyleQueue, Submitted};

use crate::support::{redis_url, unique_prefix};

const TTL: Duration = Duration::from_secs(600);
const BLOCK: Duration = Duration::from_millis(200);

fn spec(object: &str) -> JobSpec {
    JobSpec {
        bucket: "uploads".into(),
        object: object.into(),
        style: "ghibli".into(),
        prompt: "a cat, ghibli style".into(),
        negative_prompt: "blurry".into(),
        prompt_source: "template".into(),
        strength: 0.6,
        steps: 20,
        guidance_scale: 7.5,
        seed: 7,
    }
}

fn queue(max_attempts: u32) -> StyleQueue {
    StyleQueue::new(&redis_url(), &unique_prefix(), max_attempts, TTL).expect("queue")
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn run(outcome: ClaimOutcome) -> Claimed {
    match outcome {
        ClaimOutcome::Run(c) => *c,
        other => panic!("expected a job to run, got {other:?}"),
    }
}

#[tokio::test]
async fn submit_is_idempotent_and_bounded_by_depth() {
    let q = queue(3);
    let first = id();
    assert_eq!(
        q.submit(&first, &spec("a.jpg"), Some("key-1"), 2).await.unwrap(),
        Submitted::Queued(first.clone())
    );
    // Same key: the same job, nothing new queued.
    assert_eq!(
        q.submit(&id(), &spec("a.jpg"), Some("key-1"), 2).await.unwrap(),
        Submitted::Existing(first.clone())
    );
    assert_eq!(q.find_idempotent("key-1").await.unwrap(), Some(first.clone()));
    assert_eq!(q.depth().await.unwrap(), 1);
    q.submit(&id(), &spec("b.jpg"), None, 2).await.unwrap();
    assert_eq!(
        q.submit(&id(), &spec("c.jpg"), None, 2).await.unwrap(),
        Submitted::Full { depth: 2 }
    );
    assert_eq!(q.depth().await.unwrap(), 2);

    let job = q.get(&first).await.unwrap().expect("the job exists");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.spec, spec("a.jpg"));
    assert_eq!(job.attempts, 0);
    assert!(q.get(&id()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_completed_job_leaves_the_stream_and_keeps_its_result() {
    let q = queue(3);
    let job = id();
    q.submit(&job, &spec("a.jpg"), None, 10).await.unwrap();
    let w = q.worker("w1", BLOCK).await.unwrap();
    let claimed = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert_eq!(
        (claimed.job.id.as_str(), claimed.attempt, claimed.reclaimed),
        (job.as_str(), 1, false)
    );
    let running = q.get(&job).await.unwrap().unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.worker.as_deref(), Some("w1"));
    assert!(w.heartbeat(&claimed).await.unwrap());
    assert!(w.complete(&claimed, "style/x.png").await.unwrap());
    let done = q.get(&job).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.result_object.as_deref(), Some("style/x.png"));
    assert!(done.finished_ms >= done.started_ms);
    assert_eq!(q.depth().await.unwrap(), 0);
    assert!(matches!(
        w.claim(Duration::from_secs(60)).await.unwrap(),
        ClaimOutcome::Idle
    ));
}

#[tokio::test]
async fn a_silent_workers_job_is_reclaimed_and_the_old_owner_cannot_finish_it() {
    let q = queue(3);
    let job = id();
    q.submit(&job, &spec("a.jpg"), None, 10).await.unwrap();
    let dead = q.worker("dead", BLOCK).await.unwrap();
    let alive = q.worker("alive", BLOCK).await.unwrap();
    let first = run(dead.claim(Duration::from_secs(60)).await.unwrap()).await;

    // Within the idle timeout nothing is reclaimed (the other worker finds no work)…
    assert!(matches!(
        alive.claim(Duration::from_secs(60)).await.unwrap(),
        ClaimOutcome::Idle
    ));
    // …past it (here: 300 ms without a heartbeat) the job is taken over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = run(alive.claim(Duration::from_millis(300)).await.unwrap()).await;
    assert_eq!(
        (second.job.id.as_str(), second.attempt, second.reclaimed),
        (job.as_str(), 2, true)
    );
    let record = q.get(&job).await.unwrap().unwrap();
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or("")
            .contains("worker dead stopped sending heartbeats"),
        "{record:?}"
    );

    // The old owner wakes up: its heartbeat, completion and failure are all refused.
    assert!(!dead.heartbeat(&first).await.unwrap());
    assert!(!dead.complete(&first, "style/old.png").await.unwrap());
    assert_eq!(dead.fail(&first, "late").await.unwrap(), FailOutcome::Lost);
    assert!(alive.complete(&second, "style/new.png").await.unwrap());
    let done = q.get(&job).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Done, 2));
    assert_eq!(done.result_object.as_deref(), Some("style/new.png"));
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_from_being_reclaimed() {
    let q = queue(3);
    q.submit(&id(), &spec("a.jpg"), None, 10).await.unwrap();
    let busy = q.worker("busy", BLOCK).await.unwrap();
    let other = q.worker("other", BLOCK).await.unwrap();
    let claimed = run(busy.claim(Duration::from_millis(300)).await.unwrap()).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(busy.heartbeat(&claimed).await.unwrap());
        assert!(matches!(
            other.claim(Duration::from_millis(300)).await.unwrap(),
            ClaimOutcome::Idle
        ));
    }
}

#[tokio::test]
async fn failures_retry_then_go_to_the_dead_letter_stream_with_the_last_error() {
    let q = queue(3);
    let job = id();
    q.submit(&job, &spec("a.jpg"), None, 10).await.unwrap();
    let w = q.worker("w", BLOCK).await.unwrap();
    for attempt in 1..=3 {
        let claimed = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
        assert_eq!(claimed.attempt, attempt);
        let outcome = w.fail(&claimed, &format!("boom {attempt}")).await.unwrap();
        let expected = if attempt < 3 {
            FailOutcome::Retrying
        } else {
            FailOutcome::DeadLettered
        };
        assert_eq!(outcome, expected);
    }
    let failed = q.get(&job).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 3));
    assert_eq!(failed.error.as_deref(), Some("boom 3"));
    assert_eq!(q.depth().await.unwrap(), 0);
    assert_eq!(
        q.dead_letter_entries().await.unwrap(),
        vec![(job, "boom 3".to_owned(), 3)]
    );
}

#[tokio::test]
async fn a_job_whose_workers_keep_dying_is_dead_lettered_when_reclaimed_once_too_often() {
    let q = queue(2);
    let job = id();
    q.submit(&job, &spec("a.jpg"), None, 10).await.unwrap();
    let w = q.worker("w", BLOCK).await.unwrap();
    let idle = Duration::from_millis(100);
    run(w.claim(idle).await.unwrap()).await; // attempt 1, never finished
    tokio::time::sleep(Duration::from_millis(150)).await;
    run(w.claim(idle).await.unwrap()).await; // attempt 2 (reclaimed), never finished
    tokio::time::sleep(Duration::from_millis(150)).await;
    match w.claim(idle).await.unwrap() {
        ClaimOutcome::DeadLettered { job_id, error } => {
            assert_eq!(job_id, job);
            assert!(error.contains("gave up after 2 attempts"), "{error}");
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(q.get(&job).await.unwrap().unwrap().status, JobStatus::Failed);
    assert_eq!(q.dead_letters().await.unwrap(), 1);
}

#[tokio::test]
async fn the_dead_letter_stream_keeps_only_its_newest_entries() {
    let q = queue(1).with_dead_letter_cap(3);
    let w = q.worker("w", BLOCK).await.unwrap();
    let mut jobs = Vec::new();
    for n in 0..5 {
        let job = id();
        q.submit(&job, &spec(&format!("{n}.jpg")), None, 10).await.unwrap();
        let claimed = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
        assert_eq!(
            w.fail(&claimed, &format!("boom {n}")).await.unwrap(),
            FailOutcome::DeadLettered
        );
        jobs.push(job);
    }
    // Reclaimed once too often goes through the same cap.
    let job = id();
    q.submit(&job, &spec("5.jpg"), None, 10).await.unwrap();
    run(w.claim(Duration::from_millis(50)).await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        w.claim(Duration::from_millis(50)).await.unwrap(),
        ClaimOutcome::DeadLettered { .. }
    ));
    jobs.push(job);
    let kept: Vec<String> = q
        .dead_letter_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|(j, _, _)| j)
        .collect();
    assert_eq!(kept, jobs[3..].to_vec(), "the three newest dead letters, oldest first");
    // The jobs themselves keep their status and error whatever the stream dropped.
    let first = q.get(&jobs[0]).await.unwrap().unwrap();
    assert_eq!(
        (first.status, first.error.as_deref()),
        (JobStatus::Failed, Some("boom 0"))
    );
}

/// Submits a job and lets `w` run and complete it.
async fn finish_one(q: &StyleQueue, w: &ongi_shared::queue::WorkerQueue) {
    q.submit(&id(), &spec("a.jpg"), None, 10).await.unwrap();
    let claimed = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert!(w.complete(&claimed, "style/x.png").await.unwrap());
}

#[tokio::test]
async fn consumers_of_workers_that_are_gone_are_pruned_and_a_stopping_worker_removes_itself() {
    let q = queue(3);
    let live = q.worker("live", BLOCK).await.unwrap();
    let gone = q.worker("gone", BLOCK).await.unwrap();
    let holding = q.worker("holding", BLOCK).await.unwrap();
    // A consumer exists once a job was delivered to it. `live` and `gone` each finish one;
    // `holding` keeps its job.
    finish_one(&q, &gone).await;
    finish_one(&q, &live).await;
    q.submit(&id(), &spec("b.jpg"), None, 10).await.unwrap();
    run(holding.claim(Duration::from_secs(60)).await.unwrap()).await;
    let mut names = live.consumers().await.unwrap();
    names.sort();
    assert_eq!(names, ["gone", "holding", "live"]);

    tokio::time::sleep(Duration::from_millis(400)).await;
    // `live` has just worked again; `gone` has been silent for 400 ms; `holding` is silent
    // too but owns an entry, which removing it would orphan.
    finish_one(&q, &live).await;
    assert_eq!(
        live.prune_consumers(Duration::from_millis(300), false).await.unwrap(),
        1
    );
    let mut names = live.consumers().await.unwrap();
    names.sort();
    assert_eq!(names, ["holding", "live"]);

    // A stopping worker that holds nothing removes itself; one holding a job does not.
    assert_eq!(
        holding.prune_consumers(Duration::from_secs(3600), true).await.unwrap(),
        0
    );
    assert_eq!(live.prune_consumers(Duration::from_secs(3600), true).await.unwrap(), 1);
    assert_eq!(live.consumers().await.unwrap(), ["holding"]);
    // Pruning a queue nobody has used yet is a no-op, not an error.
    let fresh = queue(3);
    let w = fresh.worker("w", BLOCK).await.unwrap();
    assert_eq!(w.prune_consumers(Duration::ZERO, true).await.unwrap(), 0);
}

#[tokio::test]
async fn a_released_job_is_queued_again_without_spending_an_attempt() {
    let q = queue(3);
    let job = id();
    q.submit(&job, &spec("a.jpg"), None, 10).await.unwrap();
    let w = q.worker("w", BLOCK).await.unwrap();
    let claimed = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert!(w.release(&claimed).await.unwrap());
    let queued = q.get(&job).await.unwrap().unwrap();
    assert_eq!((queued.status, queued.attempts), (JobStatus::Queued, 0));
    let again = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert_eq!(again.attempt, 1);
}

/// PTTL of a key in milliseconds: -1 without a TTL, -2 when the key does not exist.
async fn pttl(key: &str) -> i64 {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL").arg(key).query_async(&mut con).await.unwrap()
}

#[tokio::test]
async fn a_job_carries_no_ttl_until_it_ends_so_volatile_eviction_cannot_take_it() {
    // Memorystore runs volatile-lru (terraform/redis.tf): it evicts keys WITH a TTL. A queued
    // or running job must have none; a finished one expires after the job TTL.
    let prefix = unique_prefix();
    let q = StyleQueue::new(&redis_url(), &prefix, 2, TTL).expect("queue");
    let key = |id: &str| format!("{prefix}style:v1:job:{id}");
    let ttl_ms = i64::try_from(TTL.as_millis()).unwrap();

    let job = id();
    q.submit(&job, &spec("a.jpg"), Some("ttl-key"), 10).await.unwrap();
    assert_eq!(pttl(&key(&job)).await, -1, "a queued job has no TTL");
    assert_eq!(pttl(&q.stream_key()).await, -1, "the stream has no TTL");
    let idem = pttl(&format!("{prefix}style:v1:idem:{}", sha256_hex("ttl-key"))).await;
    assert!(idem > 0 && idem <= ttl_ms, "the idempotency key expires: {idem}");

    let w = q.worker("w1", BLOCK).await.unwrap();
    let first = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert_eq!(pttl(&key(&job)).await, -1, "a running job has no TTL");
    assert_eq!(
        w.fail(&first, "CUDA out of memory").await.unwrap(),
        FailOutcome::Retrying
    );
    assert_eq!(pttl(&key(&job)).await, -1, "a job queued again has no TTL");
    let second = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert!(w.complete(&second, "style/a.png").await.unwrap());
    let done = pttl(&key(&job)).await;
    assert!(
        done > 0 && done <= ttl_ms,
        "a finished job expires after the job TTL: {done}"
    );

    // Failed for good: expires too.
    let doomed = id();
    q.submit(&doomed, &spec("b.jpg"), None, 10).await.unwrap();
    for _ in 0..2 {
        let c = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
        w.fail(&c, "bad photo").await.unwrap();
    }
    assert_eq!(q.get(&doomed).await.unwrap().unwrap().status, JobStatus::Failed);
    let failed = pttl(&key(&doomed)).await;
    assert!(
        failed > 0 && failed <= ttl_ms,
        "a failed job expires after the job TTL: {failed}"
    );

    // A hash queued with a TTL (as an earlier version did) loses it when an attempt starts.
    let legacy = id();
    q.submit(&legacy, &spec("c.jpg"), None, 10).await.unwrap();
    {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let set: i64 = redis::cmd("PEXPIRE")
            .arg(key(&legacy))
            .arg(ttl_ms)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(set, 1);
    }
    let c = run(w.claim(Duration::from_secs(60)).await.unwrap()).await;
    assert_eq!(c.job.id, legacy);
    assert_eq!(pttl(&key(&legacy)).await, -1, "starting an attempt removes an old TTL");
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
