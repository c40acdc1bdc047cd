//! One album's analyses over its photos' features: what the album routes answer and what
//! `ongi analyze` reports, computed by the same functions so both give the same answers. The
//! routes and the command only gather the photos and map these results to their output.
//!
//! - [`Album`]: quality verdicts, duplicate groups, categories, scores and highlights.
//! - [`persons`]: the people of an album from its faces.
//! - [`answers`]: the shapes of the results.

pub(crate) mod answers;
mod people;

use std::collections::HashSet;

pub use answers::{
    CategoryGroup, DuplicateGroup, DuplicateMember, FaceDetail, InvalidImage, Person, QualityDetail,
    RepresentativeFace, ScoredCategory, ScoredImage,
};
pub use people::persons;

use crate::analysis::category::CategoryTags;
use crate::analysis::duplicate::Group;
use crate::analysis::quality::QualityVerdict;
use crate::analysis::score::{highlight_eligible, highlights};
use crate::domain::ImageRef;
use crate::pipeline::Features;
use crate::pipeline::analysis_models::AnalysisModels;

/// An album: its readable photos, each once, named by the reference they were listed under.
pub struct Album<'a> {
    analysis_models: &'a AnalysisModels,
    photos: &'a [(ImageRef, Features)],
}

/// A category's members for scoring: each photo's name in the answer and its index in the album.
pub type ScoreMembers = Vec<(String, usize)>;

impl<'a> Album<'a> {
    pub fn new(analysis_models: &'a AnalysisModels, photos: &'a [(ImageRef, Features)]) -> Self {
        Self {
            analysis_models,
            photos,
        }
    }

    /// Photo `i`'s name in answers: the reference it was listed under.
    pub fn name(&self, i: usize) -> String {
        self.photos[i].0.to_string()
    }

    /// Every photo's quality verdict, in album order (the CLIP prompt tests only with the
    /// text encoder).
    pub async fn verdicts(&self) -> Vec<QualityVerdict> {
        self.analysis_models
            .verdicts(self.photos.iter().map(|(_, f)| &f.record))
            .await
    }

    /// Every photo's verdict with its reasons and metrics (`quality?detail=true`).
    pub fn quality_details(&self, verdicts: &[QualityVerdict]) -> Vec<QualityDetail> {
        verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| QualityDetail {
                image: self.name(i),
                low_quality: v.low_quality,
                reasons: v.reasons.clone(),
                metrics: v.metrics.clone(),
            })
            .collect()
    }

    /// The duplicate groups around their keepers; groups name photos by album index.
    pub fn duplicate_groups(&self, verdicts: &[QualityVerdict]) -> Vec<Group> {
        self.analysis_models
            .duplicate_groups(self.photos.iter().map(|(_, f)| (&f.hash, &f.record)), verdicts)
    }

    /// The groups as the anchor answered them: `[[keeper, duplicate, …]]`.
    pub fn duplicate_lists(&self, groups: &[Group]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| {
                std::iter::once(g.keeper)
                    .chain(g.members.iter().map(|m| m.index))
                    .map(|i| self.name(i))
                    .collect()
            })
            .collect()
    }

    /// Each keeper and why each member joined it (`duplicates?detail=true`).
    pub fn duplicate_details(&self, groups: &[Group]) -> Vec<DuplicateGroup> {
        groups
            .iter()
            .map(|g| DuplicateGroup {
                keeper: self.name(g.keeper),
                duplicates: g
                    .members
                    .iter()
                    .map(|m| DuplicateMember {
                        image: self.name(m.index),
                        tier: m.tier,
                        hamming: m.hamming,
                        cosine: m.cosine,
                    })
                    .collect(),
            })
            .collect()
    }

    /// `(category, album indices)` of the photos that have an embedding (the others cannot
    /// be categorised), in [`CategoryTags::assign`]'s order.
    pub fn categories(&self, tags: &CategoryTags) -> Vec<(String, Vec<usize>)> {
        let with: Vec<usize> = (0..self.photos.len())
            .filter(|&i| self.photos[i].1.record.embedding.is_some())
            .collect();
        let embeddings: Vec<&[f32]> = with
            .iter()
            .filter_map(|&i| self.photos[i].1.record.embedding.as_deref())
            .collect();
        tags.assign(&embeddings)
            .into_iter()
            .map(|(category, members)| (category, members.into_iter().map(|k| with[k]).collect()))
            .collect()
    }

    /// The categories by photo name.
    pub fn category_groups(&self, categories: &[(String, Vec<usize>)]) -> Vec<CategoryGroup> {
        categories
            .iter()
            .map(|(category, members)| CategoryGroup {
                category: category.clone(),
                images: members.iter().map(|&i| self.name(i)).collect(),
            })
            .collect()
    }

    /// Which photos may be highlights: not low quality, and no duplicate but its group's keeper.
    pub fn highlight_eligible(&self, verdicts: &[QualityVerdict], groups: &[Group]) -> Vec<bool> {
        highlight_eligible(verdicts, groups)
    }

    /// Aesthetic scores per category (photos without a score are left out, a photo listed
    /// twice in a category is scored once) and, given which photos are eligible, each
    /// category's highlights.
    pub fn scores(&self, categories: &[(String, ScoreMembers)], eligible: Option<&[bool]>) -> Vec<ScoredCategory> {
        categories
            .iter()
            .map(|(category, members)| {
                let mut seen = HashSet::new();
                let mut allowed = HashSet::new();
                let images: Vec<ScoredImage> = members
                    .iter()
                    .filter(|(_, i)| seen.insert(*i))
                    .filter_map(|(name, i)| {
                        let score = self.analysis_models.aesthetic(&self.photos[*i].1.record)?;
                        if eligible.is_some_and(|e| e.get(*i).copied().unwrap_or(false)) {
                            allowed.insert(name.as_str());
                        }
                        Some(ScoredImage {
                            image: name.clone(),
                            score,
                        })
                    })
                    .collect();
                let highlights = eligible.map(|_| {
                    highlights(
                        images.iter().map(|i| (i.image.as_str(), i.score)),
                        |image| allowed.contains(image),
                        self.analysis_models.settings().highlights,
                    )
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
                });
                ScoredCategory {
                    category: category.clone(),
                    images,
                    highlights,
                }
            })
            .collect()
    }
}
