//! The well-behaved caller of `ongi bench hostile`: album calls of a few ordinary photos that
//! no call has sent before, one every half second (or as soon as the previous one is
//! answered, if it took longer) on one kept-alive connection, for as long as the bombs arrive
//! or until its photos run out. Each call's time is what such a caller felt.
//!
//! It calls the album routes that read per-photo features (decode, pixel features, CLIP).
//! The people route is left out: face detection alone costs about 0.4 s a photo with MTCNN
//! on two cores (`ongi bench album`), so its calls measure the detector, not the bombs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

pub const ROUTES: [&str; 5] = ["embedding", "duplicates", "quality", "categories", "score"];
pub const PHOTOS_PER_CALL: usize = 4;
/// A call starts at most this often.
const PACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The body of an album call to `route` with `images`.
pub fn album_body(route: &str, images: &[String]) -> Value {
    match route {
        "score" => json!({"categories": [{"category": "hostile", "images": images}]}),
        "categories" => json!({"images": images, "concepts": ["a photo"]}),
        _ => json!({ "images": images }),
    }
}

/// One call: its route, its status (0: no answer), whether every photo was analysed, and
/// its time in seconds.
pub struct Call {
    pub route: &'static str,
    /// When it started, in seconds after the first call.
    pub at: f64,
    pub status: u16,
    pub analysed: bool,
    pub seconds: f64,
}

/// Calls the album routes in turn, each with the next `PHOTOS_PER_CALL` of `photos`, until
/// `stop` is set or every photo has been sent once.
pub async fn call_until(
    client: reqwest::Client,
    base: String,
    photos: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut next = 0usize;
    let first = Instant::now();
    while !stop.load(Ordering::Relaxed) && next + PHOTOS_PER_CALL <= photos.len() {
        let route = ROUTES[calls.len() % ROUTES.len()];
        let images = photos[next..next + PHOTOS_PER_CALL].to_vec();
        next += PHOTOS_PER_CALL;
        let started = Instant::now();
        let answer = client
            .post(format!("{base}/api/albums/{route}"))
            .json(&album_body(route, &images))
            .send()
            .await;
        let (status, body) = match answer {
            Ok(r) => (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)),
            Err(_) => {
                // No server (it died): wait a moment rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                (0, Value::Null)
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let analysed = status == 201 && body["invalid_images"].as_array().is_none_or(Vec::is_empty);
        calls.push(Call {
            route,
            at: (started - first).as_secs_f64(),
            status,
            analysed,
            seconds,
        });
        tokio::time::sleep(PACE.saturating_sub(started.elapsed())).await;
    }
    calls
}

/// The `q` quantile of sorted `seconds` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What the caller felt: calls, statuses, how many were not fully analysed, and the time
/// quantiles.
pub fn summary(calls: &[Call]) -> Value {
    let mut seconds: Vec<f64> = calls.iter().map(|c| c.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for c in calls {
        *statuses.entry(c.status).or_default() += 1;
    }
    let mut by_route: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for c in calls {
        by_route.entry(c.route).or_default().push(c.seconds);
    }
    let route_p50: BTreeMap<&str, f64> = by_route
        .into_iter()
        .map(|(route, mut s)| {
            s.sort_by(f64::total_cmp);
            (route, quantile(&s, 0.5))
        })
        .collect();
    json!({
        "calls": calls.len(),
        "photos_per_call": PHOTOS_PER_CALL,
        "statuses": statuses,
        "not_analysed": calls.iter().filter(|c| !c.analysed).count(),
        "p50_s": quantile(&seconds, 0.5),
        "p90_s": quantile(&seconds, 0.9),
        "p99_s": quantile(&seconds, 0.99),
        "max_s": seconds.last().copied().unwrap_or(0.0),
        "p50_s_by_route": route_p50,
        "slowest": slowest(calls, 5),
    })
}

/// The `n` slowest calls: when each started, its route and time.
fn slowest(calls: &[Call], n: usize) -> Vec<Value> {
    let mut by_time: Vec<&Call> = calls.iter().collect();
    by_time.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    by_time
        .into_iter()
        .take(n)
        .map(|c| json!({"at_s": c.at, "route": c.route, "s": c.seconds}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), 50.0);
        assert_eq!(quantile(&s, 0.99), 99.0);
        assert_eq!(quantile(&s[..10], 0.99), 10.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
