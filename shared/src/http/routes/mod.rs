//! Routes, one file per group. [`router`] mounts the ones the process's functions serve, and
//! answers every other path (404) or method (405) with the envelope.

pub(crate) mod albums;
pub(crate) mod analyses;
pub mod batch;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod people;
pub(crate) mod search;
pub(crate) mod similar;
pub mod style;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, OriginalUri};
use axum::handler::Handler;
use axum::routing::{get, post};
use http::Method;

use super::error::ApiError;
use super::state::AppState;
use crate::functions::Function;

/// The router being built, and the methods each path takes (what a 405 names).
struct Routes {
    router: Router<AppState>,
    methods: BTreeMap<&'static str, &'static str>,
}

impl Routes {
    fn get<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
        self.router = self.router.route(path, get(handler));
        self.methods.insert(path, "GET");
        self
    }

    fn post<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
        self.router = self.router.route(path, post(handler));
        self.methods.insert(path, "POST");
        self
    }
}

pub fn router(state: &AppState) -> Router<AppState> {
    let mut routes = Routes {
        router: Router::new(),
        methods: BTreeMap::new(),
    }
    .get("/healthz", health::healthz)
    .get("/readyz", health::readyz)
    .get("/metrics", health::metrics)
    .get("/openapi.json", health::openapi)
    .post("/batch/reprocess", batch::reprocess);
    for module in state.functions.iter() {
        routes = match module {
            Function::Embedding => routes
                .post("/api/albums/embedding", albums::embedding)
                .post("/api/albums/search", search::search)
                .post("/api/albums/similar", similar::similar)
                .post("/api/text/embedding", search::text_embedding)
                .post("/events/storage", events::storage),
            Function::Category => routes.post("/api/albums/categories", analyses::categories),
            Function::Duplicate => routes.post("/api/albums/duplicates", analyses::duplicates),
            Function::Quality => routes.post("/api/albums/quality", analyses::quality),
            Function::Score => routes.post("/api/albums/score", analyses::score),
            Function::People => routes.post("/api/albums/people", people::people),
            Function::Style => routes
                .post("/api/albums/style", style::submit)
                .get("/api/albums/style/{job_id}", style::status),
        };
    }
    if state.functions.iter().any(Function::has_per_photo_step) {
        routes = routes.post("/events/features", events::features);
    }
    let methods = Arc::new(routes.methods);
    routes.router.fallback(not_found).method_not_allowed_fallback(
        move |method: Method, matched: Option<MatchedPath>, uri: OriginalUri| {
            let methods = methods.clone();
            async move {
                let route = matched.as_ref().map_or("", MatchedPath::as_str);
                // HEAD is answered wherever GET is (axum runs the GET handler without a body).
                let allow = match methods.get(route).copied() {
                    Some("GET") => "GET, HEAD",
                    Some(other) => other,
                    None => "",
                };
                ApiError::MethodNotAllowed {
                    method: shown_method(&method),
                    path: shown_path(&uri),
                    allow: allow.to_owned(),
                }
            }
        },
    )
}

/// 404 `not_found` in the envelope for any path no route of this process serves.
async fn not_found(method: Method, uri: OriginalUri) -> ApiError {
    ApiError::NotFound(format!(
        "no route {} {}: see /openapi.json for the routes this process serves",
        shown_method(&method),
        shown_path(&uri)
    ))
}

/// The method as a caller sent it, cut short: it is echoed in an answer.
fn shown_method(method: &Method) -> String {
    method.as_str().chars().take(20).collect()
}

/// The path (without the query) as a caller sent it, cut short.
fn shown_path(uri: &OriginalUri) -> String {
    uri.path().chars().take(200).collect()
}
