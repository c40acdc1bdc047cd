//! [`AnalysisModels`]: what the album analyses need from the models and the cache: text embeddings
//! of the taxonomy's prompts, the quality prompt pairs and callers' concepts (memory, then
//! the shared cache, then the CLIP text encoder), the aesthetic head, and the thresholds. The
//! decisions themselves are [`crate::analysis`]'s pure functions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::analysis::FeatureRecord;
use crate::analysis::category::{CategoryTags, TagVector};
use crate::analysis::duplicate::{self, DupPhoto, Group};
use crate::analysis::quality::{self, PROMPT_PAIRS, QualityVerdict};
use crate::analysis::taxonomy::{Tag, Taxonomy};
use crate::cache::Cache;
use crate::cache::codec::{decode_f32_le, encode_f32_le};
use crate::cache::lru::Lru;
use crate::cache::write_budget::WriteBudget;
use crate::config::AnalysisSettings;
use crate::domain::ContentHash;
use crate::model::clip::l2_normalize;
use crate::model::{ModelError, Models};

/// At most this many text embeddings of prompts made from callers' concepts are kept in
/// memory (about 256 concepts of 8 prompts; 2 KiB each, some 5 MB): callers can send any
/// string, so the memo of their prompts must not grow with what they send.
pub const CONCEPT_MEMO_CAP: usize = 2048;

/// Where a prompt comes from, which decides how long its embedding is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextOrigin {
    /// Written in Ongi's code (the taxonomy, the quality pairs): a fixed few hundred, kept in
    /// memory for the process's life and in the cache as long as features.
    Ongi,
    /// Made from a caller's concept: bounded in memory, short-lived in the cache.
    Caller,
}

/// Normalised text embeddings by prompt.
struct TextMemo {
    ongi: HashMap<String, Arc<Vec<f32>>>,
    callers: Lru<Arc<Vec<f32>>>,
}

pub struct AnalysisModels {
    models: Arc<Models>,
    cache: Cache,
    settings: AnalysisSettings,
    text_memo: Mutex<TextMemo>,
    /// What callers' texts may add to the shared cache (`ONGI_TEXT_CACHE_KB_PER_MIN`).
    caller_text_writes: WriteBudget,
}

impl AnalysisModels {
    pub fn new(models: Arc<Models>, cache: Cache, settings: AnalysisSettings) -> Self {
        Self {
            models,
            cache,
            settings,
            text_memo: Mutex::new(TextMemo {
                ongi: HashMap::new(),
                callers: Lru::new(CONCEPT_MEMO_CAP),
            }),
            caller_text_writes: WriteBudget::per_minute(settings.caller_text_bytes_per_min),
        }
    }

    pub fn settings(&self) -> &AnalysisSettings {
        &self.settings
    }

    /// How many text embeddings this process holds in memory (Ongi's prompts and at most
    /// [`CONCEPT_MEMO_CAP`] of callers' concepts).
    pub fn text_memo_len(&self) -> usize {
        let memo = self.text_memo.lock().unwrap_or_else(|p| p.into_inner());
        memo.ongi.len() + memo.callers.len()
    }

    pub fn models(&self) -> &Models {
        &self.models
    }

    /// Normalised text embeddings of Ongi's own prompts: from memory, else from the shared
    /// cache, else computed (on the blocking pool) and stored in both.
    pub async fn text_embeddings(&self, prompts: &[String]) -> Result<Vec<Arc<Vec<f32>>>, ModelError> {
        self.embed_texts(prompts, TextOrigin::Ongi).await
    }

    /// Normalised text embeddings of callers' texts (a search query's prompts, the text
    /// route): bounded in memory, short-lived in the cache, like callers' concepts.
    pub async fn caller_text_embeddings(&self, texts: &[String]) -> Result<Vec<Arc<Vec<f32>>>, ModelError> {
        self.embed_texts(texts, TextOrigin::Caller).await
    }

    async fn embed_texts(&self, prompts: &[String], origin: TextOrigin) -> Result<Vec<Arc<Vec<f32>>>, ModelError> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let textual = self
            .models
            .clip_textual
            .clone()
            .ok_or(ModelError::RuntimeNotConfigured(
                "the CLIP text encoder (categories, quality prompts)",
            ))?;
        let model_id = self.models.clip_model_id.clone();
        let key = |prompt: &str| match origin {
            TextOrigin::Ongi => self.cache.keyspace().text(&model_id, prompt),
            TextOrigin::Caller => self.cache.keyspace().concept_text(&model_id, prompt),
        };
        let mut found: Vec<Option<Arc<Vec<f32>>>> = {
            let mut memo = self.text_memo.lock().unwrap_or_else(|p| p.into_inner());
            prompts
                .iter()
                .map(|p| match origin {
                    TextOrigin::Ongi => memo.ongi.get(p).cloned(),
                    TextOrigin::Caller => memo.callers.get(p),
                })
                .collect()
        };
        let missing: Vec<usize> = (0..prompts.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let keys: Vec<_> = missing.iter().map(|&i| key(&prompts[i])).collect();
            let cached = self.cache.get_many(&keys).await;
            let mut to_compute = Vec::new();
            for (&i, value) in missing.iter().zip(cached) {
                match value.as_deref().map(decode_f32_le) {
                    Some(Ok(v)) if !v.is_empty() => found[i] = Some(Arc::new(v)),
                    _ => to_compute.push(i),
                }
            }
            if !to_compute.is_empty() {
                let texts: Vec<String> = to_compute.iter().map(|&i| prompts[i].clone()).collect();
                let computed = tokio::task::spawn_blocking(move || {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    // Chunks keep one inference call's memory small.
                    let mut out = Vec::with_capacity(refs.len());
                    for chunk in refs.chunks(64) {
                        out.extend(textual.embed(chunk)?);
                    }
                    Ok::<_, ModelError>(out)
                })
                .await
                .map_err(|e| ModelError::Inference {
                    model: "clip-textual".into(),
                    reason: e.to_string(),
                })??;
                let mut entries = Vec::with_capacity(computed.len());
                for (&i, mut v) in to_compute.iter().zip(computed) {
                    l2_normalize(&mut v);
                    entries.push((key(&prompts[i]), encode_f32_le(&v)));
                    found[i] = Some(Arc::new(v));
                }
                match origin {
                    TextOrigin::Ongi => self.cache.set_many(&entries).await,
                    TextOrigin::Caller => {
                        // Within the byte budget only; the rest stays in this process's memo.
                        let budgeted: Vec<_> = entries
                            .into_iter()
                            .filter(|(k, v)| self.caller_text_writes.try_take((k.as_str().len() + v.len()) as u64))
                            .collect();
                        let skipped = to_compute.len() - budgeted.len();
                        if skipped > 0 {
                            metrics::counter!("ongi_cache_writes_skipped_total", "kind" => "caller_text")
                                .increment(skipped as u64);
                        }
                        self.cache.set_many_for(&budgeted, self.settings.concept_text_ttl).await
                    }
                };
            }
            let mut memo = self.text_memo.lock().unwrap_or_else(|p| p.into_inner());
            for &i in &missing {
                if let Some(v) = &found[i] {
                    match origin {
                        TextOrigin::Ongi => {
                            memo.ongi.insert(prompts[i].clone(), v.clone());
                        }
                        TextOrigin::Caller => memo.callers.insert(prompts[i].clone(), v.clone()),
                    }
                }
            }
        }
        Ok(found.into_iter().map(|v| v.unwrap_or_default()).collect())
    }

    /// Each tag's mean prompt embedding (not renormalised: its dot with a photo is the mean
    /// of the prompt cosines, as the anchor computed it). Tags made from callers' concepts
    /// are embedded apart from the taxonomy's (bounded in memory, short-lived in the cache).
    pub async fn tag_vectors(&self, tags: &[Tag]) -> Result<Vec<TagVector>, ModelError> {
        let prompts = |from_caller: bool| -> Vec<String> {
            tags.iter()
                .filter(|t| t.from_caller() == from_caller)
                .flat_map(|t| t.prompts.iter().cloned())
                .collect()
        };
        let mut ongi = self.embed_texts(&prompts(false), TextOrigin::Ongi).await?.into_iter();
        let mut callers = self.embed_texts(&prompts(true), TextOrigin::Caller).await?.into_iter();
        Ok(tags
            .iter()
            .map(|t| {
                let source = if t.from_caller() { &mut callers } else { &mut ongi };
                let embeddings: Vec<Arc<Vec<f32>>> = source.by_ref().take(t.prompts.len()).collect();
                let n = t.prompts.len().max(1);
                let mut mean = vec![0.0f32; embeddings.first().map_or(0, |e| e.len())];
                for e in &embeddings {
                    mean.iter_mut().zip(e.iter()).for_each(|(m, x)| *m += x / n as f32);
                }
                TagVector {
                    name: t.name.clone(),
                    vector: mean,
                }
            })
            .collect())
    }

    /// The built-in taxonomy's candidate tags for an album with these concepts, with their
    /// vectors (needs the CLIP text encoder; callers check this before reading any photo).
    pub async fn category_tags(&self, concepts: &[String]) -> Result<CategoryTags, ModelError> {
        let taxonomy = Taxonomy::builtin();
        let tags = taxonomy.candidates(concepts);
        let vectors = self.tag_vectors(&tags).await?;
        Ok(CategoryTags::new(
            tags,
            vectors,
            taxonomy.other_name.clone(),
            self.settings.category_floor,
        ))
    }

    /// The quality prompt pairs' embeddings, or `None` without the text encoder.
    pub async fn quality_pairs(&self) -> Option<Vec<(Vec<f32>, Vec<f32>)>> {
        let prompts: Vec<String> = PROMPT_PAIRS
            .iter()
            .flat_map(|(_, p, n)| [p.to_string(), n.to_string()])
            .collect();
        let e = self.text_embeddings(&prompts).await.ok()?;
        Some(e.chunks_exact(2).map(|c| (c[0].to_vec(), c[1].to_vec())).collect())
    }

    pub fn assess(&self, record: &FeatureRecord, pairs: Option<&[(Vec<f32>, Vec<f32>)]>) -> QualityVerdict {
        quality::assess(record, pairs, &self.settings.quality)
    }

    /// Every photo's quality verdict, in order (the CLIP prompt tests only with the text encoder).
    pub async fn verdicts<'a>(&self, records: impl IntoIterator<Item = &'a FeatureRecord>) -> Vec<QualityVerdict> {
        let pairs = self.quality_pairs().await;
        records.into_iter().map(|r| self.assess(r, pairs.as_deref())).collect()
    }

    /// The album's duplicate groups around their keepers; `photos[i]` (content hash and
    /// features) pairs with `verdicts[i]`, and groups name photos by that index.
    pub fn duplicate_groups<'a>(
        &self,
        photos: impl IntoIterator<Item = (&'a ContentHash, &'a FeatureRecord)>,
        verdicts: &[QualityVerdict],
    ) -> Vec<Group> {
        let input: Vec<DupPhoto> = photos
            .into_iter()
            .zip(verdicts)
            .map(|((hash, record), v)| DupPhoto {
                hash: *hash,
                phash: record.phash,
                embedding: record.embedding.clone(),
                rank: duplicate::keeper_rank(record, v, self.aesthetic(record)),
                captured_at: record.captured_at,
            })
            .collect();
        duplicate::group(&input, self.settings.similar_cosine)
    }

    /// The aesthetic score, when the head and an embedding are available.
    pub fn aesthetic(&self, record: &FeatureRecord) -> Option<f32> {
        Some(self.models.aesthetic.as_ref()?.score(record.embedding.as_deref()?))
    }
}
