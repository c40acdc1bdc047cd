//! What a hostile caller sends, through the real application: photos whose decode would
//! take more memory than the process allows, JPEGs that declare far more pixels than their
//! data holds, bad photos sent again and again, bodies sent slowly, one photo under two
//! spellings, and names the file system cannot read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ongi_shared::functions::{Function, Functions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::analyses_api::png;
use crate::clip_parity::models_dir;
use crate::support::{TestApp, redis_url, required_env, spawn_app, unique_prefix};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)).unwrap()
}

/// An all-zero 16-bit RGBA PNG: a few kB of file, 8 bytes a pixel to decode.
fn rgba16_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new(width, height, image::ColorType::Rgba16)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// `jpeg` with its frame header (SOF0/SOF2) rewritten to declare `width`x`height`, the rest
/// of the file unchanged: a small file that claims a huge picture.
pub fn with_declared_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let mut i = 2;
    while i + 9 < out.len() {
        assert_eq!(out[i], 0xFF, "a marker at {i}");
        let marker = out[i + 1];
        let length = usize::from(u16::from_be_bytes([out[i + 2], out[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            out[i + 5..i + 7].copy_from_slice(&height.to_be_bytes());
            out[i + 7..i + 9].copy_from_slice(&width.to_be_bytes());
            return out;
        }
        i += 2 + length;
    }
    panic!("no frame header");
}

fn uploads(app: &TestApp) -> PathBuf {
    let dir = app.data_dir().join("uploads");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sharp_photo() -> Vec<u8> {
    fixture("pixel/photo_1000x750.png")
}

fn invalid<'a>(body: &'a Value, image: &str) -> &'a Value {
    body["invalid_images"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["image"] == image))
        .unwrap_or_else(|| panic!("{image} is not in invalid_images: {body}"))
}

async fn pixel_app(extra: &[(&str, &str)]) -> TestApp {
    spawn_app(Functions::all(), extra).await
}

#[tokio::test]
async fn a_photo_whose_decode_would_exceed_the_memory_budget_is_refused_from_its_header() {
    let app = pixel_app(&[("ONGI_DECODE_MEMORY_MB", "16")]).await;
    let dir = uploads(&app);
    // 2000x2000 16-bit RGBA: about 40 kB of file, 32 MB of decoder output alone.
    std::fs::write(dir.join("bomb.png"), rgba16_png(2000, 2000)).unwrap();
    std::fs::write(dir.join("fine.png"), sharp_photo()).unwrap();
    let images = json!({"images": ["bomb.png", "fine.png"]});

    let response = app.post_json("/api/albums/quality?detail=true", &images).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let bomb = invalid(&body, "bomb.png");
    assert_eq!(bomb["reason"], "too_large", "{body}");
    let detail = bomb["detail"].as_str().unwrap();
    assert!(
        detail.contains("ONGI_DECODE_MEMORY_MB") && detail.contains("2000x2000"),
        "{detail}"
    );
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "the rest of the album is analysed: {body}"
    );
    assert_eq!(body["data"][0]["image"], "fine.png");
    assert_eq!(
        app.state.features.decoder().available_mib(),
        16,
        "every decode gave its memory back"
    );
}

#[tokio::test]
async fn a_style_submission_decodes_its_photo_under_the_same_budget() {
    let app = pixel_app(&[
        ("ONGI_DECODE_MEMORY_MB", "16"),
        ("REDIS_URL", &redis_url()),
        ("ONGI_CACHE_PREFIX", &unique_prefix()),
    ])
    .await;
    std::fs::write(uploads(&app).join("bomb.png"), rgba16_png(2000, 2000)).unwrap();
    let response = app
        .post_json("/api/albums/style", &json!({"image": "bomb.png", "style": "ghibli"}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(invalid(&body, "bomb.png")["reason"], "too_large", "{body}");
}

#[tokio::test]
async fn jpegs_declaring_more_pixels_than_their_data_holds_are_refused_before_decoding() {
    let app = pixel_app(&[]).await;
    let dir = uploads(&app);
    // A 793-byte progressive and a 1 kB baseline JPEG, each declaring 9999x9999.
    std::fs::write(
        dir.join("progressive.jpg"),
        with_declared_size(&fixture("images/progressive.jpg"), 9999, 9999),
    )
    .unwrap();
    std::fs::write(
        dir.join("baseline.jpg"),
        with_declared_size(&fixture("images/baseline.jpg"), 9999, 9999),
    )
    .unwrap();
    let started = Instant::now();
    let response = app
        .post_json(
            "/api/albums/embedding",
            &json!({"images": ["progressive.jpg", "baseline.jpg"]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    for image in ["progressive.jpg", "baseline.jpg"] {
        let refused = invalid(&body, image);
        assert_eq!(refused["reason"], "corrupt", "{body}");
        assert!(refused["detail"].as_str().unwrap().contains("truncated"), "{body}");
    }
    assert_eq!(
        app.state.features.decoder().decodes(),
        0,
        "refused from the header alone"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_undecodable_photo_costs_one_decode_under_any_name_and_later_no_download() {
    let app = pixel_app(&[]).await;
    let dir = uploads(&app);
    let broken = fixture("images/truncated.jpg");
    std::fs::write(dir.join("broken.jpg"), &broken).unwrap();
    let decoder = app.state.features.decoder();

    let first = app
        .post_for_json("/api/albums/quality", &json!({"images": ["broken.jpg"]}))
        .await;
    assert_eq!(invalid(&first, "broken.jpg")["reason"], "corrupt", "{first}");
    assert_eq!(decoder.decodes(), 1);

    // Asked again, the file unchanged: the failure is remembered, nothing is decoded.
    let again = app
        .post_for_json("/api/albums/quality", &json!({"images": ["broken.jpg"]}))
        .await;
    assert_eq!(invalid(&again, "broken.jpg")["reason"], "corrupt", "{again}");
    assert_eq!(decoder.decodes(), 1);
    // Once the file is gone, the answer follows the folder, not the remembered failure.
    std::fs::remove_file(dir.join("broken.jpg")).unwrap();
    let gone = app
        .post_for_json("/api/albums/quality", &json!({"images": ["broken.jpg"]}))
        .await;
    assert_eq!(invalid(&gone, "broken.jpg")["reason"], "not_found", "{gone}");

    // The same bytes under ten other names: downloaded once each, never decoded again.
    let names: Vec<String> = (0..10).map(|i| format!("copy-{i}.jpg")).collect();
    for name in &names {
        std::fs::write(dir.join(name), &broken).unwrap();
    }
    let copies: Value = app
        .post_json("/api/albums/duplicates", &json!({ "images": names }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(copies["invalid_images"].as_array().unwrap().len(), 10, "{copies}");
    assert!(
        copies["invalid_images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["reason"] == "corrupt")
    );
    assert_eq!(decoder.decodes(), 1, "one decode for the bytes, whatever their names");
}

/// Sends `head` (and nothing more) on a new connection, then returns the connection.
async fn send_partial(app: &TestApp, head: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// What the server says before it closes `stream`, or `None` if it is still open after `wait`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    let mut answer = Vec::new();
    match tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slow_bodies_hold_no_work_slot_and_slow_clients_are_cut_at_the_read_deadline() {
    let app = pixel_app(&[("ONGI_MAX_IN_FLIGHT", "2"), ("ONGI_READ_TIMEOUT_SECS", "2")]).await;
    std::fs::write(uploads(&app).join("fine.png"), sharp_photo()).unwrap();
    // Ten clients that send 5 of 100 body bytes, and two that never finish their head.
    let mut slow_bodies = Vec::new();
    for _ in 0..10 {
        slow_bodies.push(
            send_partial(
                &app,
                "POST /api/albums/quality HTTP/1.1\r\nHost: ongi\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ima",
            )
            .await,
        );
    }
    let mut slow_heads = Vec::new();
    for _ in 0..2 {
        slow_heads.push(send_partial(&app, "POST /api/albums/quality HTTP/1.1\r\nHost: on").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A legitimate call is served, not shed, while they hang.
    let response = app
        .post_json("/api/albums/quality", &json!({"images": ["fine.png"]}))
        .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);

    // At the deadline each slow body gets a 408 in the envelope; each slow head is closed.
    for stream in &mut slow_bodies {
        let answer = read_until_closed(stream, Duration::from_secs(6))
            .await
            .expect("a slow body is cut at the read deadline");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 2 s"), "{answer}");
    }
    for stream in &mut slow_heads {
        assert!(
            read_until_closed(stream, Duration::from_secs(6)).await.is_some(),
            "a slow head is cut at the read deadline"
        );
    }
}

async fn scored_app() -> TestApp {
    spawn_app(
        Functions::all(),
        &[
            ("ONGI_MODEL_DIR", &models_dir().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("ONGI_QUALITY_CLIP_PROBABILITY", "0"),
            ("ONGI_DUPLICATE_COSINE", "2"),
        ],
    )
    .await
}

#[tokio::test]
async fn one_photo_under_two_spellings_is_one_photo_to_every_analysis() {
    let app = scored_app().await;
    let dir = uploads(&app);
    std::fs::write(dir.join("a.png"), sharp_photo()).unwrap();
    std::fs::write(
        dir.join("b.png"),
        png(&image::RgbImage::from_pixel(64, 48, image::Rgb([200, 30, 30]))),
    )
    .unwrap();
    let two_spellings = json!({"images": ["a.png", "gs://uploads/a.png", "b.png"]});

    // Never a duplicate of itself: an app deleting the non-keepers must keep the photo.
    let duplicates: Value = app
        .post_json("/api/albums/duplicates?detail=true", &two_spellings)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(duplicates["data"], json!([]), "{duplicates}");

    let quality: Value = app
        .post_json("/api/albums/quality?detail=true", &two_spellings)
        .await
        .json()
        .await
        .unwrap();
    let named: Vec<&str> = quality["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["image"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["a.png", "b.png"], "each photo once, as first spelled");

    let embedding: Value = app
        .post_json("/api/albums/embedding", &two_spellings)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        embedding["data"]["computed"].as_u64().unwrap() + embedding["data"]["cached"].as_u64().unwrap(),
        2,
        "{embedding}"
    );

    let score: Value = app
        .post_json(
            "/api/albums/score",
            &json!({"categories": [{"category": "x", "images": ["gs://uploads/a.png", "a.png", "b.png"]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let scored: Vec<&str> = score["data"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(scored, ["gs://uploads/a.png", "b.png"], "{score}");
}

#[tokio::test]
async fn names_the_file_system_cannot_read_are_per_photo_answers_not_retries() {
    let app = pixel_app(&[]).await;
    let dir = uploads(&app);
    std::fs::write(dir.join("fine.png"), sharp_photo()).unwrap();
    std::fs::write(dir.join("a.png"), sharp_photo()).unwrap();
    std::os::unix::fs::symlink("loop.jpg", dir.join("loop.jpg")).unwrap();
    let fifo = dir.join("pipe.jpg");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success(),
        "mkfifo"
    );
    let long_segment = format!("{}.jpg", "x".repeat(300));
    let images = json!({"images": ["fine.png", "a.png/x.jpg", long_segment, "loop.jpg", "pipe.jpg"]});

    let response = tokio::time::timeout(Duration::from_secs(20), app.post_json("/api/albums/quality", &images))
        .await
        .expect("a named pipe must not block the call");
    assert_eq!(response.status(), 201, "permanent per-photo answers, not a 503");
    let body: Value = response.json().await.unwrap();
    assert_eq!(invalid(&body, "a.png/x.jpg")["reason"], "not_found", "{body}");
    assert_eq!(invalid(&body, &long_segment)["reason"], "not_found", "{body}");
    assert_eq!(invalid(&body, "loop.jpg")["reason"], "unreadable", "{body}");
    assert_eq!(invalid(&body, "pipe.jpg")["reason"], "unreadable", "{body}");
    assert_eq!(body["invalid_images"].as_array().unwrap().len(), 4);

    // An upload event for such a name is acknowledged, not redelivered forever.
    let notification = json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads",
        "objectId": "pipe.jpg", "objectGeneration": "1"}, "data": "", "messageId": "m-1"}, "subscription": "s"});
    let event = app.post_json("/events/storage", &notification).await;
    assert!(event.status().is_success(), "{}", event.status());
}

#[tokio::test]
async fn a_bomb_among_people_photos_is_refused_before_detection() {
    let models = crate::people_api::model_folder();
    let app = spawn_app(
        Functions::only(Function::People),
        &[
            ("ONGI_MODEL_DIR", &models.path().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("ONGI_FACE_DETECTOR", "mtcnn"),
            ("ONGI_DECODE_MEMORY_MB", "16"),
        ],
    )
    .await;
    std::fs::write(uploads(&app).join("bomb.png"), rgba16_png(2000, 2000)).unwrap();
    let body: Value = app
        .post_json("/api/albums/people", &json!({"images": ["bomb.png"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(invalid(&body, "bomb.png")["reason"], "too_large", "{body}");
}

/// `png` with one more chunk (its CRC right, so a decoder reads it) before `IEND`.
fn png_with_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let iend = png.len() - 12;
    let mut out = png[..iend].to_vec();
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.sum().to_be_bytes());
    out.extend(&png[iend..]);
    out
}

/// A 16x16 extended WebP (VP8X announcing EXIF) whose EXIF chunk is `exif`.
fn webp_with_exif(exif: &[u8]) -> Vec<u8> {
    let mut simple = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new(16, 16, image::ColorType::Rgb8)
        .write_to(&mut simple, image::ImageFormat::WebP)
        .unwrap();
    let simple = simple.into_inner();
    let chunk = |fourcc: &[u8], data: &[u8]| {
        let mut c = fourcc.to_vec();
        c.extend((data.len() as u32).to_le_bytes());
        c.extend(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    // VP8X: flags (0x08 = EXIF), 3 reserved bytes, canvas width - 1 and height - 1 (24 bits each).
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(b"VP8X", &[0x08, 0, 0, 0, 15, 0, 0, 15, 0, 0]));
    body.extend(&simple[12..]);
    body.extend(chunk(b"EXIF", exif));
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// `jpeg` with `count` full-size ICC profile segments (APP2) after its SOI: jpeg-decoder keeps
/// every one of them.
fn jpeg_with_icc_segments(jpeg: &[u8], count: usize) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for i in 0..count {
        out.extend([0xFF, 0xE2, 0xFF, 0xFF]);
        out.extend(b"ICC_PROFILE\0");
        out.extend([(i % 255 + 1) as u8, 255]);
        out.extend(vec![0x55; 0xFFFF - 2 - 14]);
    }
    out.extend(&jpeg[2..]);
    out
}

#[tokio::test]
async fn metadata_bombs_are_refused_per_photo_before_any_decoder_reads_them() {
    let app = pixel_app(&[]).await;
    let dir = uploads(&app);
    let tiny = png(&image::RgbImage::from_pixel(8, 8, image::Rgb([90, 120, 200])));
    let mut zeros = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut zeros, &vec![0; 64 << 20]).unwrap();
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zeros.finish().unwrap());
    let bombs = [
        // 12 MB of NUL bytes as EXIF: each one an allocation in the EXIF reader.
        ("exif.png", png_with_chunk(&tiny, b"eXIf", &vec![0; 12 << 20])),
        // About 65 kB of file, a 64 MiB ICC profile once inflated.
        ("iccp.png", png_with_chunk(&tiny, b"iCCP", &iccp)),
        ("exif.webp", webp_with_exif(&vec![0; 12 << 20])),
        ("icc.jpg", jpeg_with_icc_segments(&fixture("images/baseline.jpg"), 200)),
    ];
    assert!(bombs[1].1.len() < 100_000, "{}", bombs[1].1.len());
    for (name, bytes) in &bombs {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("fine.png"), sharp_photo()).unwrap();
    let mut names: Vec<&str> = bombs.iter().map(|(name, _)| *name).collect();
    names.push("fine.png");

    let response = app
        .post_json("/api/albums/quality?detail=true", &json!({ "images": names }))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    for (name, _) in &bombs {
        let refused = invalid(&body, name);
        assert_eq!(refused["reason"], "too_large", "{name}: {body}");
        let detail = refused["detail"].as_str().unwrap();
        assert!(
            detail.contains("metadata") && detail.contains("8192 KiB"),
            "{name}: {detail}"
        );
    }
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "the rest of the album is analysed: {body}"
    );
    assert_eq!(body["data"][0]["image"], "fine.png");
}

/// What the server has sent on `stream` within `wait` (the connection may stay open).
async fn read_for(stream: &mut tokio::net::TcpStream, wait: Duration) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + wait;
    while let Ok(Ok(n)) =
        tokio::time::timeout(until.saturating_duration_since(Instant::now()), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn bodies_in_flight_are_bounded_in_bytes_across_every_connection() {
    let app = pixel_app(&[("ONGI_BODY_MEMORY_MB", "1"), ("ONGI_READ_TIMEOUT_SECS", "2")]).await;
    std::fs::write(uploads(&app).join("fine.png"), sharp_photo()).unwrap();
    let head = |length: usize| {
        format!(
            "POST /api/albums/quality HTTP/1.1\r\nHost: ongi\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"ima"
        )
    };
    // Fifty bodies declaring 512 KiB each (25 MiB against the 1 MiB budget) and trickling
    // hold what they sent, a few bytes each: a small call is served beside them.
    let mut trickling = Vec::new();
    for _ in 0..50 {
        trickling.push(send_partial(&app, &head(512 * 1024)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app
        .post_json("/api/albums/quality", &json!({"images": ["fine.png"]}))
        .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    drop(trickling);
    // Two bodies that have sent 400 KiB of their 512 hold most of the MiB (their buffers
    // grow by doubling); the next body's bytes find none left, and it is refused naming the
    // setting.
    let sent = vec![b' '; 400 * 1024];
    let mut holding = Vec::new();
    for _ in 0..2 {
        let mut stream = send_partial(&app, &head(512 * 1024)).await;
        stream.write_all(&sent).await.unwrap();
        holding.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = send_partial(&app, &head(512 * 1024)).await;
    // The server stops reading once it has answered, so the write may not finish.
    let _ = tokio::time::timeout(Duration::from_secs(1), third.write_all(&sent)).await;
    let answer = read_for(&mut third, Duration::from_secs(1)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("ONGI_BODY_MEMORY_MB") && answer.to_lowercase().contains("retry-after"),
        "{answer}"
    );
    // A body declaring more than the body limit is refused at once as too large.
    let mut huge = send_partial(&app, &head(64 << 20)).await;
    assert!(
        read_for(&mut huge, Duration::from_secs(1))
            .await
            .starts_with("HTTP/1.1 413")
    );
    // Once the trickling bodies are cut at the read deadline, their memory is free again.
    for stream in &mut holding {
        let answer = read_until_closed(stream, Duration::from_secs(6))
            .await
            .expect("cut at the deadline");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let response = app
        .post_json("/api/albums/quality", &json!({"images": ["fine.png"]}))
        .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
}

#[tokio::test]
async fn open_connections_are_bounded_and_the_next_one_waits_its_turn() {
    let app = pixel_app(&[("ONGI_MAX_CONNECTIONS", "2"), ("ONGI_READ_TIMEOUT_SECS", "2")]).await;
    std::fs::write(uploads(&app).join("fine.png"), sharp_photo()).unwrap();
    // The start-up probe's keep-alive connection is closed at the idle deadline first.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Two connections that send nothing hold both places until the head deadline closes them.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(app.address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let response = fresh
        .post(app.url("/api/albums/quality"))
        .json(&json!({"images": ["fine.png"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "answered after {:?}: the third connection was accepted beside two open ones",
        started.elapsed()
    );
    drop(silent);
}
