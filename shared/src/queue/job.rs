//! A style job as it lives in Redis: one hash per job, written with `HSET` and read back
//! with `HGETALL`. Plain string fields (not one JSON blob) so a script can update a single
//! field atomically (`status`, `attempts`, `heartbeat_ms`) and an operator can read a job
//! with `redis-cli HGETALL`.

use std::collections::HashMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;

/// Where a job is in its life. `queued` → `running` → `done`, or back to `queued` after a
/// failed attempt, or `failed` once its attempts are spent (then it is also on the
/// dead-letter stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the worker needs to run a job, fixed at submission.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The photo: bucket and object name in the uploads bucket.
    pub bucket: String,
    pub object: String,
    /// The style as asked for: a preset id (`ghibli`) or the free text.
    pub style: String,
    pub prompt: String,
    pub negative_prompt: String,
    /// `gemini` or `template`: who wrote the prompt.
    pub prompt_source: String,
    pub strength: f64,
    pub steps: u32,
    pub guidance_scale: f64,
    pub seed: u64,
}

/// A job read back from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub spec: JobSpec,
    pub status: JobStatus,
    /// Attempts started so far (a worker that died mid-job counts).
    pub attempts: u32,
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// The last heartbeat of the worker running it.
    pub heartbeat_ms: Option<u64>,
    pub worker: Option<String>,
    /// The result's object name in the results bucket, once done.
    pub result_object: Option<String>,
    /// The last attempt's error.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("job {id} is malformed in Redis: {problem}")]
pub struct MalformedJob {
    pub id: String,
    pub problem: String,
}

impl JobSpec {
    /// The hash fields written at submission.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("bucket", self.bucket.clone()),
            ("object", self.object.clone()),
            ("style", self.style.clone()),
            ("prompt", self.prompt.clone()),
            ("negative_prompt", self.negative_prompt.clone()),
            ("prompt_source", self.prompt_source.clone()),
            ("strength", self.strength.to_string()),
            ("steps", self.steps.to_string()),
            ("guidance_scale", self.guidance_scale.to_string()),
            ("seed", self.seed.to_string()),
        ]
    }
}

impl JobRecord {
    /// Parses `HGETALL`'s answer. An empty map is a job that does not exist (or expired).
    pub fn from_hash(id: &str, h: &HashMap<String, String>) -> Result<Option<Self>, MalformedJob> {
        if h.is_empty() {
            return Ok(None);
        }
        let bad = |problem: String| MalformedJob {
            id: id.to_owned(),
            problem,
        };
        let text = |name: &str| -> Result<String, MalformedJob> {
            h.get(name)
                .cloned()
                .ok_or_else(|| bad(format!("field {name} is missing")))
        };
        fn number<T: std::str::FromStr>(
            h: &HashMap<String, String>,
            name: &str,
            bad: &dyn Fn(String) -> MalformedJob,
        ) -> Result<Option<T>, MalformedJob> {
            match h.get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(format!("field {name} is not a number: {v:?}"))),
            }
        }
        let required = |name: &str| -> Result<f64, MalformedJob> {
            number::<f64>(h, name, &bad)?.ok_or_else(|| bad(format!("field {name} is missing")))
        };
        let optional = |name: &str| h.get(name).filter(|v| !v.is_empty()).cloned();
        let status = text("status")?;
        let spec = JobSpec {
            bucket: text("bucket")?,
            object: text("object")?,
            style: text("style")?,
            prompt: text("prompt")?,
            negative_prompt: text("negative_prompt")?,
            prompt_source: text("prompt_source")?,
            strength: required("strength")?,
            steps: number(h, "steps", &bad)?.ok_or_else(|| bad("field steps is missing".into()))?,
            guidance_scale: required("guidance_scale")?,
            seed: number(h, "seed", &bad)?.ok_or_else(|| bad("field seed is missing".into()))?,
        };
        Ok(Some(Self {
            id: id.to_owned(),
            spec,
            status: JobStatus::parse(&status).ok_or_else(|| bad(format!("unknown status {status:?}")))?,
            attempts: number(h, "attempts", &bad)?.unwrap_or(0),
            created_ms: number(h, "created_ms", &bad)?.unwrap_or(0),
            started_ms: number(h, "started_ms", &bad)?,
            finished_ms: number(h, "finished_ms", &bad)?,
            heartbeat_ms: number(h, "heartbeat_ms", &bad)?,
            worker: optional("worker"),
            result_object: optional("result_object"),
            error: optional("error"),
        }))
    }
}

/// Milliseconds since 1970, the unit of every time stored with a job.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            bucket: "uploads".into(),
            object: "a.jpg".into(),
            style: "ghibli".into(),
            prompt: "p".into(),
            negative_prompt: "n".into(),
            prompt_source: "template".into(),
            strength: 0.6,
            steps: 20,
            guidance_scale: 7.5,
            seed: 42,
        }
    }

    #[test]
    fn a_hash_round_trips_and_missing_fields_are_named() {
        let mut h: HashMap<String, String> = spec().fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        h.insert("status".into(), "queued".into());
        h.insert("attempts".into(), "1".into());
        h.insert("created_ms".into(), "5".into());
        h.insert("error".into(), String::new());
        let job = JobRecord::from_hash("j", &h).unwrap().unwrap();
        assert_eq!(job.spec, spec());
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.error, None);

        assert!(JobRecord::from_hash("j", &HashMap::new()).unwrap().is_none());
        h.remove("seed");
        let err = JobRecord::from_hash("j", &h).unwrap_err().to_string();
        assert!(err.contains("seed"), "{err}");
        h.insert("seed".into(), "x".into());
        assert!(JobRecord::from_hash("j", &h).is_err());
    }
}
