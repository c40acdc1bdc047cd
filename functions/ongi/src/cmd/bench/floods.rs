//! The floods of `ongi bench hostile`, running beside the bombs until they are answered:
//! connections that declare a body of almost a megabyte and trickle it a byte at a time
//! (round 2's 1.6 GiB attack), and distinct texts on `/api/text/embedding` (what a caller
//! could write to the shared cache).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the body flood's connections ended, by the status the server answered ("closed":
/// no answer; "open": still trickling when the flood stopped; "refused": no connection).
pub type Endings = BTreeMap<String, u64>;

/// `connections` clients, each declaring a 1 MiB − 1 body on an album route and sending a
/// byte every 200 ms, reconnecting once answered, until `stop` is set.
pub async fn trickled_bodies(address: SocketAddr, connections: usize, stop: Arc<AtomicBool>) -> Endings {
    let clients: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(trickle_until(address, stop.clone())))
        .collect();
    let mut endings = Endings::new();
    for client in clients {
        for (ending, n) in client.await.unwrap_or_default() {
            *endings.entry(ending).or_default() += n;
        }
    }
    endings
}

async fn trickle_until(address: SocketAddr, stop: Arc<AtomicBool>) -> Endings {
    let head = format!(
        "POST /api/albums/embedding HTTP/1.1\r\nHost: ongi\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) - 1
    );
    let mut endings = Endings::new();
    while !stop.load(Ordering::Relaxed) {
        let ending = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address)).await {
            Ok(Ok(mut stream)) => match stream.write_all(head.as_bytes()).await {
                Ok(()) => trickle(&mut stream, &stop).await,
                Err(_) => "closed".to_owned(),
            },
            _ => "refused".to_owned(),
        };
        *endings.entry(ending).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    endings
}

/// Sends a byte every 200 ms until the server answers (its status), closes, or `stop`.
async fn trickle(stream: &mut TcpStream, stop: &AtomicBool) -> String {
    let mut answer = [0u8; 12];
    loop {
        if stop.load(Ordering::Relaxed) {
            return "open".to_owned();
        }
        tokio::select! {
            read = stream.read(&mut answer) => {
                return match read {
                    Ok(n) if n >= 12 => String::from_utf8_lossy(&answer[9..12]).into_owned(),
                    _ => "closed".to_owned(),
                };
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(b" ").await.is_err() {
                    return "closed".to_owned();
                }
            }
        }
    }
}

/// `tasks` callers, each sending 64 texts no one sent before per call to
/// `/api/text/embedding`, until `stop` is set: statuses by count, and texts sent.
pub async fn distinct_texts(
    client: reqwest::Client,
    base: String,
    tasks: usize,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<u16, u64>, u64) {
    let callers: Vec<_> = (0..tasks)
        .map(|task| {
            let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
                let mut sent = 0u64;
                let mut call = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let texts: Vec<String> = (0..64)
                        .map(|i| format!("flood {task} {call} {i} a photo of something"))
                        .collect();
                    call += 1;
                    let status = match client
                        .post(format!("{base}/api/text/embedding"))
                        .json(&json!({ "texts": texts }))
                        .send()
                        .await
                    {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    *statuses.entry(status).or_default() += 1;
                    sent += 64;
                }
                (statuses, sent)
            })
        })
        .collect();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut sent = 0;
    for caller in callers {
        if let Ok((s, n)) = caller.await {
            for (status, count) in s {
                *statuses.entry(status).or_default() += count;
            }
            sent += n;
        }
    }
    (statuses, sent)
}
