//! Cloud Run function `duplicate`: duplicate groups with a keeper. All logic lives in `ongi-shared`.
#![forbid(unsafe_code)]

use ongi_shared::functions::{Function, Functions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ongi_shared::http::app::serve_from_env(Functions::only(Function::Duplicate))
        .await
        .map_err(anyhow::Error::new)
}
