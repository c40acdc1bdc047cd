//! Search by text: a query in English or in the taxonomy's Korean, turned into CLIP prompts,
//! and an album's photos ranked by cosine similarity to them.
//!
//! CLIP ViT-B/32's text encoder was trained on English only: Korean text gives it tokens it
//! never learnt, and rankings that mean nothing. So Korean is not sent to CLIP. Every Korean
//! word or phrase of the query that is a name in the taxonomy (a tag's display name, or an
//! app concept) is replaced by that tag's English name; a query that still holds Hangul
//! after that is refused, naming the words that are not known, rather than answered badly.
//! Before any of that the query is put in NFC (a Korean word typed or pasted as decomposed
//! jamo is the same word), and a query holding invisible characters (zero-width spaces and
//! joiners, bidirectional overrides, other format and control characters) is refused, naming
//! them: they change what a query says without being seen. A name is replaced only where it
//! is not glued to Latin letters or digits (`xx반려묘xx` stays Korean, and is refused).
//! The English query is then put into the taxonomy's prompt templates (`a photo of {}`, …),
//! as the categories do with a caller's concept, and the mean of those prompt embeddings is
//! the query vector.

use super::taxonomy::Taxonomy;

/// A query as it goes to CLIP.
#[derive(Debug, Clone, PartialEq)]
pub struct EnglishQuery {
    /// The query with every known Korean name replaced by its English name.
    pub english: String,
    /// Each replacement made: (the Korean name, the English name).
    pub translated: Vec<(String, String)>,
}

/// Why a query cannot be searched for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query is empty")]
    Empty,
    #[error(
        "the query holds Korean words the taxonomy does not name ({}): CLIP understands English only, \
         and Korean is translated only through the taxonomy's names; write those words in English",
        .0.join(", ")
    )]
    UnknownKorean(Vec<String>),
    #[error("the query holds invisible characters ({}): remove them", .0.join(", "))]
    Invisible(Vec<String>),
}

/// Every block of Hangul: jamo (and their extensions A and B), compatibility and halfwidth
/// jamo, syllables, and parenthesised and circled Hangul.
fn is_hangul(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}'
        | '\u{3130}'..='\u{318F}'
        | '\u{3200}'..='\u{321E}'
        | '\u{3260}'..='\u{327E}'
        | '\u{A960}'..='\u{A97F}'
        | '\u{AC00}'..='\u{D7AF}'
        | '\u{D7B0}'..='\u{D7FF}'
        | '\u{FFA0}'..='\u{FFDC}')
}

/// Characters a reader does not see: controls other than white space, and the format
/// characters (zero-width space, joiners and non-joiners, bidirectional marks, embeddings,
/// overrides and isolates, the word joiner and invisible operators, the byte-order mark, the
/// soft hyphen, variation selectors, tags).
fn is_invisible(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || matches!(c,
            '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// A letter or digit of another script than Hangul: a Korean name next to one is part of a
/// longer word, not the name.
fn glued(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() && !is_hangul(c))
}

/// `text` with every occurrence of `ko` that stands on its own replaced by `en`, or `None`
/// if there is none.
fn replace_name(text: &str, ko: &str, en: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(ko) {
        let end = at + ko.len();
        if glued(text[..at].chars().next_back()) || glued(text[end..].chars().next()) {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str(en);
        last = end;
    }
    if last == 0 {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// Every Korean name the taxonomy knows with its English name: tag names, and app concepts
/// (named by their first tag's English name). Longest first, so that "음식과 음료" is
/// replaced whole before "음료" could be.
fn korean_names(taxonomy: &Taxonomy) -> Vec<(&str, &str)> {
    let mut names: Vec<(&str, &str)> = taxonomy
        .tags
        .iter()
        .map(|t| (t.name.as_str(), t.english.as_str()))
        .chain(taxonomy.concepts.iter().filter_map(|c| {
            let first = taxonomy.tag(c.tags.first()?)?;
            Some((c.name.as_str(), first.english.as_str()))
        }))
        .filter(|(ko, _)| ko.chars().any(is_hangul))
        .collect();
    names.sort_by(|a, b| b.0.chars().count().cmp(&a.0.chars().count()).then(a.0.cmp(b.0)));
    names.dedup_by(|a, b| a.0 == b.0);
    names
}

/// Turns a caller's query into English (see the module comment).
pub fn to_english(taxonomy: &Taxonomy, query: &str) -> Result<EnglishQuery, QueryError> {
    let query = icu_normalizer::ComposingNormalizer::new_nfc().normalize(query);
    let mut invisible: Vec<String> = query
        .chars()
        .filter(|&c| is_invisible(c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    if !invisible.is_empty() {
        invisible.dedup();
        return Err(QueryError::Invisible(invisible));
    }
    let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if query.is_empty() {
        return Err(QueryError::Empty);
    }
    let mut english = query;
    let mut translated = Vec::new();
    if english.chars().any(is_hangul) {
        for (ko, en) in korean_names(taxonomy) {
            if let Some(replaced) = replace_name(&english, ko, &en.to_lowercase()) {
                english = replaced;
                translated.push((ko.to_owned(), en.to_owned()));
            }
        }
    }
    let unknown: Vec<String> = english
        .split_whitespace()
        .filter(|w| w.chars().any(is_hangul))
        .map(str::to_owned)
        .collect();
    if !unknown.is_empty() {
        return Err(QueryError::UnknownKorean(unknown));
    }
    Ok(EnglishQuery { english, translated })
}

/// The prompts whose mean embedding stands for the query.
pub fn prompts(taxonomy: &Taxonomy, query: &EnglishQuery) -> Vec<String> {
    taxonomy
        .prompt_templates
        .iter()
        .map(|t| t.replace("{}", &query.english))
        .collect()
}

/// The mean of normalised prompt embeddings, normalised again: its dot with a normalised
/// photo embedding is a cosine similarity.
pub fn query_vector(prompt_embeddings: &[&[f32]]) -> Vec<f32> {
    let dim = prompt_embeddings.first().map_or(0, |e| e.len());
    let mut mean = vec![0.0f32; dim];
    for e in prompt_embeddings {
        mean.iter_mut().zip(e.iter()).for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        mean.iter_mut().for_each(|x| *x /= norm);
    }
    mean
}

/// Photo indices with their similarity to `query`, best first (ties in input order), at most
/// `limit`.
pub fn rank(embeddings: &[&[f32]], query: &[f32], limit: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| (i, e.iter().zip(query).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(limit);
    scored
}

/// One photo's neighbours in its album: the other photos by cosine similarity to photo
/// `target` (the vectors are unit length), at most `limit`. The photos marked in `copies`
/// (the same bytes as the target) come first; then the most similar (a re-encode of the same
/// picture can be as similar as a copy); ties in album order.
pub fn similar_to(target: usize, embeddings: &[&[f32]], copies: &[bool], limit: usize) -> Vec<(usize, f32)> {
    let Some(query) = embeddings.get(target) else {
        return Vec::new();
    };
    let copy = |i: usize| copies.get(i).copied().unwrap_or(false);
    let mut scored: Vec<(usize, f32)> = rank(embeddings, query, embeddings.len())
        .into_iter()
        .filter(|(i, _)| *i != target)
        .collect();
    // Stable: within copies and within the rest, `rank`'s order stays.
    scored.sort_by_key(|(i, _)| !copy(*i));
    scored.truncate(limit);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photos_neighbours_leave_it_out_and_keep_the_limit() {
        let photos: [&[f32]; 5] = [&[1.0, 0.0], &[0.0, 1.0], &[0.8, 0.6], &[1.0, 0.0], &[1.0, 0.0]];
        let no_copies = [false; 5];
        let near = similar_to(0, &photos, &no_copies, 3);
        assert_eq!(near.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![3, 4, 2]);
        assert!((near[0].1 - 1.0).abs() < 1e-6 && (near[2].1 - 0.8).abs() < 1e-6);
        // A copy of the bytes goes before an equally similar photo.
        let copies = [false, false, false, false, true];
        let near = similar_to(0, &photos, &copies, 2);
        assert_eq!(near.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![4, 3]);
        assert_eq!(
            similar_to(3, &photos, &no_copies, 10).len(),
            4,
            "every other photo, never itself"
        );
        assert!(similar_to(9, &photos, &no_copies, 10).is_empty());
    }

    #[test]
    fn english_queries_pass_through_with_white_space_tidied() {
        let t = Taxonomy::builtin();
        let q = to_english(t, "  a dog   on the beach ").unwrap();
        assert_eq!(q.english, "a dog on the beach");
        assert!(q.translated.is_empty());
        let prompts = prompts(t, &q);
        assert_eq!(prompts.len(), t.prompt_templates.len());
        assert!(prompts.iter().all(|p| p.contains("a dog on the beach")), "{prompts:?}");
        assert_eq!(to_english(t, " \n ").unwrap_err(), QueryError::Empty);
    }

    #[test]
    fn korean_names_of_the_taxonomy_are_translated_and_other_korean_is_refused() {
        let t = Taxonomy::builtin();
        // Every tag's own Korean name comes back as its English name.
        for tag in t.tags.iter().filter(|tag| tag.name.chars().any(is_hangul)) {
            let q = to_english(t, &tag.name).unwrap_or_else(|e| panic!("{}: {e}", tag.name));
            assert!(!q.english.chars().any(is_hangul), "{} → {}", tag.name, q.english);
            assert!(!q.translated.is_empty());
        }
        // A concept of several words is replaced whole, inside a mixed query.
        let q = to_english(t, "음식과 음료 at night").unwrap();
        assert_eq!(q.translated.first().map(|(ko, _)| ko.as_str()), Some("음식과 음료"));
        assert!(
            q.english.ends_with(" at night") && q.english.is_ascii(),
            "{}",
            q.english
        );
        // Korean the taxonomy does not name is refused, naming the words.
        let err = to_english(t, "동물 우주선").unwrap_err();
        assert_eq!(err, QueryError::UnknownKorean(vec!["우주선".into()]));
        assert!(err.to_string().contains("우주선") && err.to_string().contains("English"));
    }

    #[test]
    fn decomposed_korean_is_the_same_word_and_every_hangul_block_is_korean() {
        let t = Taxonomy::builtin();
        let nfc = to_english(t, "반려묘").unwrap();
        assert!(nfc.english.is_ascii(), "{}", nfc.english);
        let nfd = icu_normalizer::DecomposingNormalizer::new_nfd()
            .normalize("반려묘")
            .into_owned();
        assert_ne!(nfd, "반려묘");
        assert_eq!(to_english(t, &nfd).unwrap(), nfc);
        // Halfwidth, Jamo Extended-A and -B, parenthesised and circled Hangul never reach CLIP.
        for word in [
            "\u{FFA1}\u{FFC2}",
            "\u{A960}",
            "\u{D7B0}",
            "\u{320E}",
            "\u{326E}",
            "dog\u{3260}",
        ] {
            let err = to_english(t, word).unwrap_err();
            assert_eq!(err, QueryError::UnknownKorean(vec![word.into()]), "{word:?}");
        }
    }

    #[test]
    fn a_name_glued_to_latin_letters_or_digits_is_not_replaced() {
        let t = Taxonomy::builtin();
        assert_eq!(
            to_english(t, "xx반려묘xx").unwrap_err(),
            QueryError::UnknownKorean(vec!["xx반려묘xx".into()])
        );
        assert!(to_english(t, "2반려묘").is_err());
        // Punctuation and white space are boundaries.
        assert!(to_english(t, "(반려묘), 반려묘!").unwrap().english.is_ascii());
    }

    #[test]
    fn invisible_characters_are_refused_by_name() {
        let t = Taxonomy::builtin();
        for (query, named) in [
            ("dog\u{200B}", "U+200B"),
            ("\u{202E}god", "U+202E"),
            ("cat\u{2066}s", "U+2066"),
            ("\u{FEFF}beach", "U+FEFF"),
            ("sun\u{0007}set", "U+0007"),
        ] {
            let err = to_english(t, query).unwrap_err();
            assert_eq!(err, QueryError::Invisible(vec![named.into()]), "{query:?}");
            assert!(err.to_string().contains(named));
        }
        assert!(to_english(t, "a dog\ton the beach").is_ok(), "a tab is white space");
    }

    #[test]
    fn photos_are_ranked_by_cosine_with_ties_in_input_order() {
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 1.0];
        let c = [0.6f32, 0.8];
        let query = query_vector(&[&[1.0, 0.0], &[0.8, 0.6]]);
        assert!((query.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
        let ranked = rank(&[&b, &a, &c, &a], &query, 3);
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3, 2]);
        assert!(ranked[0].1 > ranked[2].1 && ranked[2].1 > 0.0);
        assert!(rank(&[&a], &query, 0).is_empty());
    }
}
