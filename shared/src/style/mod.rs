//! Style transfer, the API side (docs/style.md): which styles exist, who writes the
//! diffusion prompt (Gemini, or a fixed template per style), and the small photo Gemini is
//! shown. The GPU worker (`gpu-job`) runs the diffusion; the queue between them is
//! [`crate::queue`].

pub(crate) mod gemini;
pub mod preset;
pub(crate) mod prompt;
pub(crate) mod thumbnail;

pub use preset::{PRESETS, Preset, StyleChoice};
pub use prompt::{PromptSource, PromptWriter, StylePrompt, template_prompt};
