//! The styles a user can ask for: named presets, or a short free-text description.
//!
//! Each preset carries the fixed prompt template used when Gemini is not configured, is
//! down, or answers something unusable, so a style job always gets a prompt.

/// What the user asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StyleChoice {
    Preset(&'static Preset),
    /// Free text, cleaned (printable, single spaces, at most [`MAX_STYLE_CHARS`]).
    FreeText(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Preset {
    /// The id sent by the app and stored with the job (`ghibli`, `oil_painting`, …).
    pub id: &'static str,
    /// What Gemini is told the style is.
    pub description: &'static str,
    /// The fallback prompt: the style's words, added after the subject.
    pub template: &'static str,
    pub negative: &'static str,
}

/// Longest free-text style accepted; longer text is refused rather than cut.
pub const MAX_STYLE_CHARS: usize = 200;

/// What every style wants to avoid (the negative prompt, with the preset's own words first).
pub const COMMON_NEGATIVE: &str = "blurry, low quality, jpeg artifacts, deformed, disfigured, extra limbs, \
     bad anatomy, watermark, signature, text";

pub const PRESETS: &[Preset] = &[
    Preset {
        id: "ghibli",
        description: "Studio Ghibli style hand-drawn anime illustration",
        template: "studio ghibli style, hand-drawn anime illustration, soft pastel colours, painterly \
                   backgrounds, warm natural light, whimsical, highly detailed",
        negative: "photorealistic, photo, 3d render",
    },
    Preset {
        id: "watercolor",
        description: "watercolour painting",
        template: "watercolor painting, soft washes of colour, visible paper texture, loose brush strokes, \
                   delicate edges, artistic",
        negative: "photorealistic, photo, sharp digital lines, 3d render",
    },
    Preset {
        id: "oil_painting",
        description: "classical oil painting",
        template: "oil painting on canvas, rich impasto brush strokes, classical fine art, dramatic \
                   lighting, deep colours, museum quality",
        negative: "photorealistic, photo, flat colours, cartoon",
    },
    Preset {
        id: "3d_animation",
        description: "3D animated film still (Pixar-like)",
        template: "3d animation style, animated film still, soft global illumination, expressive \
                   characters, smooth shading, vibrant colours, octane render",
        negative: "photo, 2d, sketch, flat",
    },
    Preset {
        id: "pencil_sketch",
        description: "graphite pencil sketch",
        template: "pencil sketch, graphite drawing on paper, fine cross-hatching, monochrome, detailed \
                   line art, hand drawn",
        negative: "colour, photo, painting, 3d render",
    },
    Preset {
        id: "anime",
        description: "modern anime key visual",
        template: "anime style, cel shading, clean line art, vibrant colours, detailed anime key visual",
        negative: "photorealistic, photo, 3d render, western cartoon",
    },
];

impl StyleChoice {
    /// A preset by id (case, spaces, hyphens and a few common spellings forgiven), else free
    /// text. Empty, too long or non-printable text is refused with a sentence saying why.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // Counted and checked as sent, before white space is tidied: the API document states
        // the rule on the text the caller writes.
        if raw.chars().count() > MAX_STYLE_CHARS {
            return Err(format!(
                "style is {} characters; at most {MAX_STYLE_CHARS} (or name a preset: {})",
                raw.chars().count(),
                preset_ids()
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("style contains control characters".into());
        }
        let cleaned: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if cleaned.is_empty() {
            return Err("style is empty: name a preset or describe a style".into());
        }
        let key: String = cleaned
            .to_lowercase()
            .chars()
            .map(|c| if c == ' ' || c == '-' { '_' } else { c })
            .collect();
        let key = match key.as_str() {
            "watercolour" => "watercolor",
            "oil" | "oil_paint" | "oilpainting" => "oil_painting",
            "3d" | "3d_animated" | "3d_animation_style" | "pixar" => "3d_animation",
            "pencil" | "sketch" | "pencilsketch" => "pencil_sketch",
            "studio_ghibli" => "ghibli",
            other => other,
        };
        if let Some(p) = PRESETS.iter().find(|p| p.id == key) {
            return Ok(Self::Preset(p));
        }
        Ok(Self::FreeText(cleaned))
    }

    /// The id stored with the job: the preset id, or the free text itself.
    pub fn label(&self) -> &str {
        match self {
            Self::Preset(p) => p.id,
            Self::FreeText(t) => t,
        }
    }
}

/// `ghibli, watercolor, …` for error messages and the OpenAPI description.
pub fn preset_ids() -> String {
    PRESETS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_found_by_forgiving_names_and_the_rest_is_free_text() {
        for (raw, id) in [
            ("ghibli", "ghibli"),
            ("Studio Ghibli", "ghibli"),
            ("Oil painting", "oil_painting"),
            ("3D animation", "3d_animation"),
            ("pencil-sketch", "pencil_sketch"),
            ("WATERCOLOUR", "watercolor"),
            ("anime", "anime"),
        ] {
            assert_eq!(StyleChoice::parse(raw).unwrap().label(), id, "{raw}");
        }
        assert_eq!(
            StyleChoice::parse("  van gogh   starry night ").unwrap(),
            StyleChoice::FreeText("van gogh starry night".into())
        );
        assert!(StyleChoice::parse("   ").is_err());
        assert!(StyleChoice::parse(&"x".repeat(MAX_STYLE_CHARS + 1)).is_err());
        assert!(StyleChoice::parse("a\u{7}b").is_err());
    }
}
