//! Prompt to CLIP hidden states: the conditioning the UNet cross-attends to.

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use instant_clip_tokenizer::{Token, Tokenizer};

/// The tokenizer (expensive to build: it parses the bundled BPE vocabulary) and the text
/// encoder, built once per model.
pub(crate) struct TextEncoder {
    tokenizer: Tokenizer,
    model: ClipTextTransformer,
    /// Sequence length: prompts are truncated and padded to it (77 for SD 1.5).
    length: usize,
    device: Device,
}

impl TextEncoder {
    pub(crate) fn new(model: ClipTextTransformer, length: usize, device: Device) -> Self {
        TextEncoder {
            tokenizer: Tokenizer::new(),
            model,
            length,
            device,
        }
    }

    /// `<start> prompt <end> <end>...`: SD 1.5 pads with the end token (49407), and a prompt
    /// longer than the sequence is cut so that its end token still fits, as the diffusers
    /// tokenizer does with `truncation=True`.
    pub(crate) fn token_ids(&self, prompt: &str) -> Vec<u32> {
        let mut tokens: Vec<Token> = Vec::new();
        self.tokenizer.encode(prompt, &mut tokens);
        let start = self.tokenizer.start_of_text().to_u16();
        let end = self.tokenizer.end_of_text().to_u16();
        let body = self.length.saturating_sub(2);
        let mut ids = Vec::with_capacity(self.length);
        ids.push(u32::from(start));
        ids.extend(tokens.iter().take(body).map(|t| u32::from(t.to_u16())));
        ids.resize(self.length, u32::from(end));
        ids
    }

    /// The last hidden state, [1, length, embed_dim], in `dtype`.
    pub(crate) fn encode(&self, prompt: &str, dtype: DType) -> candle_core::Result<Tensor> {
        let ids = self.token_ids(prompt);
        let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        // usize::MAX: no padding mask, only the causal one, which is what SD 1.5 was trained
        // with (the UNet sees the states of the padding tokens too).
        self.model.forward_with_mask(&ids, usize::MAX)?.to_dtype(dtype)
    }
}
