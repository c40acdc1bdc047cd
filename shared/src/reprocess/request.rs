//! What a reprocessing call asks for: the steps ([`Step`], [`resolve_steps`]), the body as
//! given ([`RawRequest`]) and its validation into a [`ReprocessRequest`], whose
//! [`run_id`](ReprocessRequest::run_id) names the run's cursor and lease.

use std::time::{Duration, SystemTime};

use crate::domain::{BucketName, ContentHash, MAX_REF_BYTES};
use crate::functions::{Function, Functions};
use crate::model::Models;
use crate::model::loaded::PIXELS_ONLY;
use crate::storage::MAX_PAGE_SIZE;

/// What a reprocessing run can redo for a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// The feature record (CLIP embedding and pixel features).
    Embedding,
    Category,
    Quality,
    Score,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Embedding, Step::Category, Step::Quality, Step::Score];

    pub fn name(self) -> &'static str {
        self.module().name()
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The module whose process serves this step.
    pub fn module(self) -> Function {
        match self {
            Step::Embedding => Function::Embedding,
            Step::Category => Function::Category,
            Step::Quality => Function::Quality,
            Step::Score => Function::Score,
        }
    }

    /// The per-photo step's module, for the steps whose output is a stored result.
    pub(super) fn per_photo(self) -> Option<Function> {
        (self != Step::Embedding).then(|| self.module())
    }

    /// Why this process cannot run the step, if it cannot.
    fn missing_model(self, models: &Models) -> Option<&'static str> {
        let pixels_only = models.clip_model_id == PIXELS_ONLY;
        match self {
            Step::Embedding | Step::Quality => None,
            Step::Category if pixels_only || models.clip_textual.is_none() => Some(
                "category needs the CLIP encoders (clip-vit-b32-visual.onnx and -textual.onnx), which are not loaded",
            ),
            Step::Score if pixels_only || models.aesthetic.is_none() => Some(
                "score needs CLIP and the aesthetic head (aesthetic-vit-b32-linear.safetensors), which are not loaded",
            ),
            Step::Category | Step::Score => None,
        }
    }
}

/// Why a request cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request is wrong (a field, or a step this process does not serve): a 400.
    #[error("{0}")]
    Invalid(String),
    /// The step is served here but its model is not loaded: a 503.
    #[error("{0}")]
    Unavailable(String),
}

/// The steps of a run: the ones asked for, or by default every step this process serves and
/// can run. Sorted, without repeats.
pub fn resolve_steps(
    requested: Option<&[String]>,
    functions: &Functions,
    models: &Models,
) -> Result<Vec<Step>, RequestError> {
    let served = |s: &Step| functions.contains(s.module());
    let Some(requested) = requested else {
        let steps: Vec<Step> = Step::ALL
            .into_iter()
            .filter(|s| served(s) && s.missing_model(models).is_none())
            .collect();
        if steps.is_empty() {
            return Err(RequestError::Invalid(format!(
                "this process ({}) serves no step that can be reprocessed: call the embedding, category, quality or score function",
                functions.service_name()
            )));
        }
        return Ok(steps);
    };
    if requested.is_empty() {
        return Err(RequestError::Invalid(
            "steps is empty: leave it out for every step this process serves".into(),
        ));
    }
    let mut steps = Vec::with_capacity(requested.len());
    for name in requested {
        let step = Step::parse(name).ok_or_else(|| {
            RequestError::Invalid(format!(
                "steps: {:?} is not a step (expected embedding, category, quality or score)",
                name.chars().take(40).collect::<String>()
            ))
        })?;
        if !served(&step) {
            return Err(RequestError::Invalid(format!(
                "steps: {} is not served by this process ({})",
                step.name(),
                functions.service_name()
            )));
        }
        if let Some(why) = step.missing_model(models) {
            return Err(RequestError::Unavailable(why.to_owned()));
        }
        steps.push(step);
    }
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

/// Checks a listing prefix by the rules of image references (it is a name's beginning).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_REF_BYTES {
        return Err(format!("prefix is longer than {MAX_REF_BYTES} bytes"));
    }
    if prefix.chars().any(char::is_control) {
        return Err("prefix contains a control character".into());
    }
    if prefix.starts_with('/') {
        return Err("prefix starts with '/': object names never do".into());
    }
    if prefix.contains('\\') {
        return Err("prefix contains a backslash".into());
    }
    if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
        return Err("prefix contains a '.', '..' or empty path segment".into());
    }
    Ok(())
}

/// The longest time budget a call may ask for.
pub const MAX_BUDGET: Duration = Duration::from_secs(3600);

/// A call as the route's body or the command line give it, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawRequest<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// RFC 3339, e.g. `2026-11-25T00:00:00Z`.
    pub since: Option<&'a str>,
    pub steps: Option<&'a [String]>,
    pub dry_run: bool,
    /// Seconds; the setting `ONGI_REPROCESS_BUDGET_SECS` when absent.
    pub budget_secs: Option<f64>,
    pub page_size: Option<u32>,
    pub max_pages: Option<u32>,
}

impl RawRequest<'_> {
    /// Validates every field, naming the first that is wrong. `bucket` must be the bucket
    /// this process serves: features are cached per bucket, and the album routes read only
    /// that one, so reprocessing another would fill the cache with entries nothing reads.
    pub fn validate(
        &self,
        served_bucket: &BucketName,
        functions: &Functions,
        models: &Models,
        default_budget: Duration,
    ) -> Result<ReprocessRequest, RequestError> {
        let invalid = |why: String| RequestError::Invalid(why);
        let shown = |s: &str| s.chars().take(80).collect::<String>();
        let bucket =
            BucketName::parse(self.bucket).map_err(|e| invalid(format!("bucket {:?}: {e}", shown(self.bucket))))?;
        if &bucket != served_bucket {
            return Err(invalid(format!(
                "bucket {:?} is not served here: this process reads photos from {:?} (ONGI_BUCKET)",
                bucket.as_str(),
                served_bucket.as_str()
            )));
        }
        validate_prefix(self.prefix).map_err(invalid)?;
        let since = match self.since {
            Some(s) => Some(crate::domain::time::parse_rfc3339(s).map_err(|e| invalid(format!("since: {e}")))?),
            None => None,
        };
        let budget = match self.budget_secs {
            Some(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_BUDGET.as_secs_f64() => {
                Duration::from_secs_f64(secs)
            }
            Some(_) => {
                return Err(invalid(format!(
                    "budget_secs must be a number of seconds above 0 and at most {}",
                    MAX_BUDGET.as_secs()
                )));
            }
            None => default_budget,
        };
        let page_size = match self.page_size {
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(_) => return Err(invalid(format!("page_size must be between 1 and {MAX_PAGE_SIZE}"))),
            None => MAX_PAGE_SIZE,
        };
        if self.max_pages == Some(0) {
            return Err(invalid("max_pages must be at least 1".into()));
        }
        Ok(ReprocessRequest {
            bucket,
            prefix: self.prefix.to_owned(),
            since,
            steps: resolve_steps(self.steps, functions, models)?,
            dry_run: self.dry_run,
            budget,
            page_size,
            max_pages: self.max_pages,
        })
    }
}

/// One validated call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprocessRequest {
    pub bucket: BucketName,
    /// Only objects whose names start with this ("" for the whole bucket).
    pub prefix: String,
    /// Only objects updated at or after this time.
    pub since: Option<SystemTime>,
    pub steps: Vec<Step>,
    /// Count what would be processed; process nothing, move no cursor.
    pub dry_run: bool,
    /// No photo is started after this long.
    pub budget: Duration,
    /// Objects per listed page (1 to 1000).
    pub page_size: u32,
    /// Stop after this many pages (the cursor is saved; the next call resumes).
    pub max_pages: Option<u32>,
}

impl ReprocessRequest {
    /// The run's identity: a new `since`, step list or model starts a walk of its own.
    pub fn run_id(&self, model: &str) -> String {
        let steps: Vec<&str> = self.steps.iter().map(|s| s.name()).collect();
        let since = self.since.map(crate::domain::time::format_rfc3339);
        let identity = serde_json::json!([self.bucket.as_str(), self.prefix, since, steps, model]).to_string();
        ContentHash::of(identity.as_bytes()).to_hex()[..24].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn steps_default_to_what_is_served_and_loaded() {
        let none = Models::none("test");
        let all = resolve_steps(None, &Functions::all(), &none).unwrap();
        assert_eq!(
            all,
            vec![Step::Embedding, Step::Quality],
            "pixel-only: no category, no score"
        );
        let only = resolve_steps(None, &Functions::only(Function::Quality), &none).unwrap();
        assert_eq!(only, vec![Step::Quality]);
        assert!(matches!(
            resolve_steps(None, &Functions::only(Function::Duplicate), &none),
            Err(RequestError::Invalid(_))
        ));
        let asked = ["quality".to_owned(), "embedding".to_owned(), "quality".to_owned()];
        assert_eq!(
            resolve_steps(Some(&asked), &Functions::all(), &none).unwrap(),
            vec![Step::Embedding, Step::Quality]
        );
        let err = resolve_steps(Some(&["people".to_owned()]), &Functions::all(), &none).unwrap_err();
        assert!(err.to_string().contains("\"people\" is not a step"), "{err}");
        let err = resolve_steps(
            Some(&["embedding".to_owned()]),
            &Functions::only(Function::Quality),
            &none,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not served"), "{err}");
        let err = resolve_steps(Some(&["score".to_owned()]), &Functions::all(), &none).unwrap_err();
        assert!(matches!(err, RequestError::Unavailable(_)), "{err}");
        assert!(matches!(
            resolve_steps(Some(&[]), &Functions::all(), &none),
            Err(RequestError::Invalid(_))
        ));
    }

    #[test]
    fn prefixes_follow_the_reference_rules() {
        for ok in ["", "albums/", "albums/2026-", "a b/c"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["/abs", "a/../b", "..", "a//b", "a\\b", "a\nb", &"x".repeat(1025)] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_name_the_field_that_is_wrong() {
        let uploads = BucketName::parse("uploads").unwrap();
        let none = Models::none("test");
        let check = |raw: RawRequest<'_>| raw.validate(&uploads, &Functions::all(), &none, Duration::from_secs(50));
        let ok = check(RawRequest {
            bucket: "uploads",
            prefix: "a/",
            since: Some("2026-01-01T00:00:00Z"),
            ..RawRequest::default()
        })
        .unwrap();
        assert_eq!(ok.budget, Duration::from_secs(50));
        assert_eq!(ok.page_size, MAX_PAGE_SIZE);
        assert_eq!(ok.steps, vec![Step::Embedding, Step::Quality]);
        for (raw, expected) in [
            (
                RawRequest {
                    bucket: "Bad!",
                    ..RawRequest::default()
                },
                "bucket \"Bad!\"",
            ),
            (
                RawRequest {
                    bucket: "results",
                    ..RawRequest::default()
                },
                "is not served here",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    prefix: "../x",
                    ..RawRequest::default()
                },
                "prefix",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    since: Some("1750000000"),
                    ..RawRequest::default()
                },
                "since",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    budget_secs: Some(0.0),
                    ..RawRequest::default()
                },
                "budget_secs",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    budget_secs: Some(f64::NAN),
                    ..RawRequest::default()
                },
                "budget_secs",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    page_size: Some(1001),
                    ..RawRequest::default()
                },
                "page_size",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    max_pages: Some(0),
                    ..RawRequest::default()
                },
                "max_pages",
            ),
        ] {
            let err = check(raw).unwrap_err();
            assert!(matches!(err, RequestError::Invalid(_)), "{err}");
            assert!(err.to_string().contains(expected), "{err} should name {expected}");
        }
    }

    #[test]
    fn the_run_id_names_bucket_prefix_since_steps_and_model() {
        let req = ReprocessRequest {
            bucket: BucketName::parse("uploads").unwrap(),
            prefix: "a/".into(),
            since: None,
            steps: vec![Step::Embedding],
            dry_run: false,
            budget: Duration::from_secs(50),
            page_size: 1000,
            max_pages: None,
        };
        let id = req.run_id("m1");
        assert_eq!(id.len(), 24);
        assert_eq!(id, req.clone().run_id("m1"), "stable");
        assert_ne!(id, req.run_id("m2"), "a new model starts a new walk");
        let other = ReprocessRequest {
            prefix: "b/".into(),
            ..req.clone()
        };
        assert_ne!(id, other.run_id("m1"));
        let later = ReprocessRequest {
            since: Some(UNIX_EPOCH + Duration::from_secs(5)),
            ..req.clone()
        };
        assert_ne!(id, later.run_id("m1"));
        let budget = ReprocessRequest {
            budget: Duration::from_secs(1),
            dry_run: true,
            page_size: 5,
            ..req.clone()
        };
        assert_eq!(id, budget.run_id("m1"), "how a call is cut is not part of the run");
    }
}
