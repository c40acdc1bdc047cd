//! A tiny HTTP file server of a test's own, for the downloads tests make.

use std::io::Read;

/// A tiny HTTP/1.1 file server on a thread: `GET /<name>` answers the bytes registered
/// under `name`, anything else 404. Returns the base URL and a count of its requests.
/// (Model and ONNX Runtime downloads in tests come from here: no model hub is reachable.)
pub fn serve_files(files: Vec<(&str, Vec<u8>)>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let files: std::collections::HashMap<String, Vec<u8>> =
        files.into_iter().map(|(n, b)| (format!("/{n}"), b)).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let head = String::from_utf8_lossy(&request).into_owned();
            let path = head
                .strip_prefix("GET ")
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_default();
            let (status, body) = match files.get(path) {
                Some(body) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (base, hits)
}
