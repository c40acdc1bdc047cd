//! Helpers of the manifest tests: the fixture folder, small manifests, and a tiny HTTP
//! server to download from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::schema::{MANIFEST_FILE, Manifest};

/// Names of the files in a folder, sorted, but for the hash stamps (see `stamp`).
pub(in crate::model) fn listing(dir: &Path) -> Vec<String> {
    let mut names = ongi_test_support::file_names(dir);
    names.retain(|n| n != super::STAMP_FILE);
    names
}

pub(super) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

/// A copy of the fixture folder (manifest and models) in a temporary folder.
pub(super) fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        MANIFEST_FILE,
        "clip-vit-b32-visual.onnx",
        "clip-vit-b32-textual.onnx",
        "aesthetic-vit-b32-linear.safetensors",
    ] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

pub(in crate::model) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(super) fn one_model_manifest(
    file: &str,
    sha256: &str,
    bytes: Option<u64>,
    source: &str,
    required: bool,
) -> Manifest {
    let bytes = bytes.map(|b| format!("bytes = {b}\n")).unwrap_or_default();
    Manifest::from_toml_str(&format!(
        "[[model]]\nrole = \"test\"\nfile = \"{file}\"\nsha256 = \"{sha256}\"\n{bytes}licence = \"MIT\"\n\
         source = \"{source}\"\nrequired = {required}\n"
    ))
    .unwrap()
}

pub(in crate::model) fn assert_one_line(message: &str) {
    assert!(!message.contains('\n'), "one line: {message:?}");
    assert!(!message.is_empty());
}

/// A tiny HTTP/1.1 server: `GET /<name>` answers the body served under that name, or 404.
/// Counts the requests it answered.
pub(in crate::model) async fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> (String, Arc<AtomicUsize>) {
    serve_claiming(routes, 0).await
}

/// [`serve`], announcing `extra` more bytes than it sends (a connection that breaks off).
pub(super) async fn serve_claiming(routes: Vec<(&'static str, Vec<u8>)>, extra: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let routes = routes.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let found = routes.iter().find(|(name, _)| path == format!("/{name}"));
                let (status, body) = match found {
                    Some((_, body)) => ("200 OK", body.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len() + extra
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, hits)
}
