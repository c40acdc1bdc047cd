//! Cloud Run function `style`: restyled copies through the GPU worker. All logic lives in `ongi-shared`.
#![forbid(unsafe_code)]

use ongi_shared::modules::{Module, Modules};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ongi_shared::http::app::serve_from_env(Modules::only(Module::Style))
        .await
        .map_err(anyhow::Error::new)
}
