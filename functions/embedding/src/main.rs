//! Cloud Run function `embedding`: CLIP embeddings and pixel features per photo, fed by
//! upload events (flow A) and album calls. All logic lives in `ongi-shared`.
#![forbid(unsafe_code)]

use ongi_shared::functions::{Function, Functions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ongi_shared::http::app::serve_from_env(Functions::only(Function::Embedding))
        .await
        .map_err(anyhow::Error::new)
}
