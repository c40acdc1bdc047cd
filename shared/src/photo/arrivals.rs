//! How each arrival becomes one run of the flow: which photo, and what to do with it.
//!
//! - An **upload** (a GCS notification) counts when it is a new object generation in the
//!   bucket this process serves, with an image content type or none (clients often upload
//!   without one; the decoder decides), under a name Ongi accepts; its features are computed
//!   and announced.
//! - An **announcement** (`ongi-features`) asks for every per-photo result this process
//!   serves, reading the record under the hash it names.
//! - A **walk** (reprocessing) asks for what is due: the announcement when the embedding step
//!   ran, and the results not stored yet.

use super::{PhotoObject, Plan};
use crate::domain::{BucketName, ImageRef};
use crate::events::features::AnnouncedFeatures;
use crate::events::storage::{StorageEvent, StorageEventKind};
use crate::functions::{Function, Functions};

/// One run of the flow: the photo and the plan.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub photo: PhotoObject,
    pub plan: Plan,
}

/// The upload `event` as a run of the flow, or why it needs none (logged and acknowledged:
/// no retry would change the answer).
pub fn admit_upload(event: &StorageEvent, served: &BucketName) -> Result<Arrival, String> {
    if let StorageEventKind::Other(kind) = &event.kind {
        return Err(format!("event type {kind} needs no processing"));
    }
    if event.bucket != served.as_str() {
        return Err(format!("bucket {} is not served here", event.bucket));
    }
    // An empty or generic type says nothing; a definite non-image type is skipped without
    // a download.
    if let Some(ct) = event
        .content_type
        .as_deref()
        .filter(|ct| !ct.is_empty() && !ct.starts_with("image/") && !ct.starts_with("application/octet-stream"))
    {
        return Err(format!("content type {ct} is not an image"));
    }
    if let Err(e) = ImageRef::parse(&event.object) {
        return Err(format!("object name refused: {e}"));
    }
    Ok(Arrival {
        photo: PhotoObject {
            bucket: served.clone(),
            name: event.object.clone(),
            generation: event.generation,
        },
        plan: Plan {
            announce: true,
            ..Plan::default()
        },
    })
}

impl Arrival {
    /// An `ongi-features` message, for the per-photo results of the functions `served`.
    pub fn announced(announced: &AnnouncedFeatures, served: &Functions) -> Self {
        Self {
            photo: PhotoObject {
                bucket: announced.bucket.clone(),
                name: announced.message.object.clone(),
                generation: announced.message.generation,
            },
            plan: Plan {
                results: served.iter().filter(|m| m.has_per_photo_step()).collect(),
                announced: Some(announced.hash),
                ..Plan::default()
            },
        }
    }

    /// A walk's due photo: announced when its embedding step ran (`announce`), and the
    /// results of `functions` not stored yet.
    pub fn walked(photo: PhotoObject, announce: bool, functions: Vec<Function>) -> Self {
        Self {
            photo,
            plan: Plan {
                announce,
                results: functions,
                skip_stored: true,
                announced: None,
            },
        }
    }
}
