//! The album analyses: pure functions over per-photo features ([`FeatureRecord`]) and text
//! vectors, with no I/O (the text embeddings and the cache are
//! [`crate::pipeline::analysis_models::AnalysisModels`]'s).
//!
//! - [`category`]: zero-shot tags (the anchor's algorithm, defects fixed) over [`taxonomy`].
//! - [`duplicate`]: exact / near / similar tiers, each group around its best photo.
//! - [`quality`]: blur, exposure and CLIP prompt pairs, each a stated reason.
//! - [`score`]: highlights, from the aesthetic head's scores.
//! - [`people`]: faces grouped by identity.
//! - [`search`]: a text query (English, or the taxonomy's Korean) → photos ranked by CLIP similarity.
//! - [`record`]: the per-photo feature record and its binary form.

pub(crate) mod category;
pub mod duplicate;
pub mod people;
pub mod quality;
pub(crate) mod record;
pub(crate) mod score;
pub(crate) mod search;
pub mod taxonomy;

pub use record::FeatureRecord;
