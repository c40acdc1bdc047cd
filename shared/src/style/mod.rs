//! Style transfer, the API side (DESIGN.md flow C): which styles exist, who writes the
//! diffusion prompt (Gemini, or a fixed template per style), and the small photo Gemini is
//! shown. The GPU worker (`gpu-job`) runs the diffusion; the queue between them is
//! [`crate::queue`].

pub mod gemini;
pub mod preset;
pub mod prompt;
pub mod thumbnail;

pub use preset::{PRESETS, Preset, StyleChoice};
pub use prompt::{PromptSource, PromptWriter, StylePrompt, template_prompt};
