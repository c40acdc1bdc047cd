//! The diffusion prompt: Gemini's when it answers well, a fixed template otherwise.

use super::gemini::GeminiClient;
use super::preset::{COMMON_NEGATIVE, StyleChoice};

/// Longest positive prompt kept (CLIP reads 77 tokens, about 300 characters, anyway).
pub const MAX_POSITIVE_CHARS: usize = 400;
/// Longest negative prompt kept.
pub const MAX_NEGATIVE_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptSource {
    Gemini,
    Template,
}

impl PromptSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gemini => "gemini",
            Self::Template => "template",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StylePrompt {
    pub positive: String,
    pub negative: String,
    pub source: PromptSource,
}

/// The fixed prompt of a style, used whenever Gemini cannot write one.
pub fn template_prompt(style: &StyleChoice) -> StylePrompt {
    let (positive, negative) = match style {
        StyleChoice::Preset(p) => (p.template.to_owned(), format!("{}, {COMMON_NEGATIVE}", p.negative)),
        StyleChoice::FreeText(text) => (
            format!("{text}, artwork in this style, high quality, detailed"),
            format!("photorealistic photo, {COMMON_NEGATIVE}"),
        ),
    };
    StylePrompt {
        positive: clean(&positive, MAX_POSITIVE_CHARS),
        negative: clean(&negative, MAX_NEGATIVE_CHARS),
        source: PromptSource::Template,
    }
}

/// One line of printable text, single-spaced, cut at a word boundary within `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max).collect();
    match cut.rfind([' ', ',']) {
        Some(i) if i > max / 2 => cut[..i].trim_end_matches([' ', ',']).to_owned(),
        _ => cut,
    }
}

/// Writes prompts: Gemini when configured, the template when it is not or when it fails.
pub struct PromptWriter {
    gemini: Option<GeminiClient>,
}

impl PromptWriter {
    pub fn new(gemini: Option<GeminiClient>) -> Self {
        Self { gemini }
    }

    pub fn uses_gemini(&self) -> bool {
        self.gemini.is_some()
    }

    /// Never fails: every Gemini problem is logged, counted, and answered with the template.
    /// `photo` is a small PNG of the photo (Gemini sees what it is restyling).
    pub async fn write(&self, photo: Option<&[u8]>, style: &StyleChoice) -> StylePrompt {
        let Some(gemini) = &self.gemini else {
            metrics::counter!("ongi_style_prompts_total", "source" => "template", "why" => "not_configured")
                .increment(1);
            return template_prompt(style);
        };
        match gemini.write_prompt(photo, style).await {
            Ok((positive, negative)) => {
                metrics::counter!("ongi_style_prompts_total", "source" => "gemini", "why" => "ok").increment(1);
                StylePrompt {
                    positive,
                    negative,
                    source: PromptSource::Gemini,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, style = style.label(), "Gemini wrote no prompt; using the style's template");
                metrics::counter!("ongi_style_prompts_total", "source" => "template", "why" => e.kind()).increment(1);
                template_prompt(style)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::style::preset::PRESETS;

    #[test]
    fn every_preset_has_a_template_within_the_caps() {
        for p in PRESETS {
            let t = template_prompt(&StyleChoice::Preset(p));
            assert!(
                !t.positive.is_empty() && t.positive.len() <= MAX_POSITIVE_CHARS,
                "{}",
                p.id
            );
            assert!(t.negative.contains("watermark"), "{}", p.id);
            assert_eq!(t.source, PromptSource::Template);
        }
        let free = template_prompt(&StyleChoice::FreeText("ukiyo-e woodblock".into()));
        assert!(free.positive.starts_with("ukiyo-e woodblock"));
    }

    #[test]
    fn clean_makes_one_capped_line() {
        assert_eq!(clean(" a\n\tb\u{0}c  ", 100), "a b c");
        let long = "word, ".repeat(100);
        let cut = clean(&long, 50);
        assert!(cut.chars().count() <= 50 && !cut.ends_with(','), "{cut}");
    }
}
