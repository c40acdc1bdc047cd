//! The category taxonomy, checked in as `taxonomy.toml` and compiled into every binary:
//! the anchor's 32 base tags, extra tags reachable through the app's concepts, and prompt
//! templates for concepts the taxonomy does not know.

use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    /// Stable id: cache keys and stored results use it.
    pub id: String,
    /// The display name the API returns as `category` (≤ 20 characters: the app's column).
    pub name: String,
    pub english: String,
    pub prompts: Vec<String>,
    #[serde(default)]
    pub concept_only: bool,
}

/// The id prefix of a tag made from a caller's concept that the taxonomy does not know.
pub const CALLER_TAG_PREFIX: &str = "concept:";

impl Tag {
    /// Whether this tag was made from a caller's concept (its prompts hold caller text),
    /// rather than written in `taxonomy.toml`.
    pub fn from_caller(&self) -> bool {
        self.id.starts_with(CALLER_TAG_PREFIX)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Concept {
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Taxonomy {
    #[serde(rename = "tag")]
    pub tags: Vec<Tag>,
    #[serde(rename = "concept")]
    pub concepts: Vec<Concept>,
    pub other_name: String,
    pub prompt_templates: Vec<String>,
}

/// The longest display name the app's database column holds.
pub const MAX_NAME_CHARS: usize = 20;

impl Taxonomy {
    /// The checked-in taxonomy (validated by a unit test, so this cannot fail at run time).
    pub fn builtin() -> &'static Taxonomy {
        static TAXONOMY: OnceLock<Taxonomy> = OnceLock::new();
        TAXONOMY.get_or_init(|| {
            toml::from_str(include_str!("taxonomy.toml")).expect("taxonomy.toml is validated by its unit test")
        })
    }

    pub fn tag(&self, id: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.id == id)
    }

    /// The candidate tags of an album with these concepts: every base tag, then each known
    /// concept's tags, then a tag made from templates for each unknown concept. No tag twice.
    pub fn candidates(&self, concepts: &[String]) -> Vec<Tag> {
        let mut out: Vec<Tag> = self.tags.iter().filter(|t| !t.concept_only).cloned().collect();
        for concept in concepts {
            let concept = concept.trim();
            if concept.is_empty() {
                continue;
            }
            match self.concepts.iter().find(|c| c.name == concept) {
                Some(known) => {
                    for id in &known.tags {
                        if let Some(tag) = self.tag(id)
                            && !out.iter().any(|t| t.id == tag.id)
                        {
                            out.push(tag.clone());
                        }
                    }
                }
                None => {
                    let id = format!("{CALLER_TAG_PREFIX}{concept}");
                    if !out.iter().any(|t| t.id == id) {
                        out.push(Tag {
                            id,
                            name: concept.chars().take(MAX_NAME_CHARS).collect(),
                            english: concept.to_owned(),
                            prompts: self.prompt_templates.iter().map(|t| t.replace("{}", concept)).collect(),
                            concept_only: true,
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_CONCEPTS: [&str; 14] = [
        "IT",
        "공연",
        "교통수단",
        "동물",
        "식물",
        "액티비티",
        "업무",
        "여행",
        "운동",
        "음식과 음료",
        "인물",
        "장소",
        "취미",
        "풍경",
    ];

    #[test]
    fn the_checked_in_taxonomy_is_valid() {
        let t = Taxonomy::builtin();
        let base: Vec<&Tag> = t.tags.iter().filter(|t| !t.concept_only).collect();
        assert_eq!(base.len(), 32, "the anchor's 32 base tags");
        for tag in &t.tags {
            assert!(tag.name.chars().count() <= MAX_NAME_CHARS, "{} is too long", tag.name);
            assert!(tag.prompts.len() >= 4, "{} has {} prompts", tag.id, tag.prompts.len());
            assert!(!tag.from_caller(), "{}: the caller-tag prefix is reserved", tag.id);
        }
        let mut names: Vec<&str> = t.tags.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), t.tags.len(), "tag names are unique");
        for c in APP_CONCEPTS {
            let concept = t
                .concepts
                .iter()
                .find(|x| x.name == c)
                .unwrap_or_else(|| panic!("concept {c}"));
            assert!(concept.tags.len() >= 3);
            assert!(
                concept.tags.iter().all(|id| t.tag(id).is_some()),
                "{c} names an unknown tag"
            );
        }
        assert!(!t.other_name.is_empty() && t.prompt_templates.iter().all(|p| p.contains("{}")));
    }

    #[test]
    fn concepts_add_tags_once_and_unknown_concepts_become_tags() {
        let t = Taxonomy::builtin();
        let base = t.candidates(&[]).len();
        let with = t.candidates(&["여행".into(), "여행".into(), "우주".into()]);
        assert!(with.len() > base + 1);
        let made = with.iter().find(|x| x.id == "concept:우주").unwrap();
        assert!(made.from_caller());
        assert!(
            with.iter().filter(|x| x.from_caller()).count() == 1,
            "여행 is the taxonomy's own"
        );
        assert_eq!(made.name, "우주");
        assert!(made.prompts.iter().all(|p| p.contains("우주")));
        let mut ids: Vec<&str> = with.iter().map(|x| x.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), with.len());
    }
}
