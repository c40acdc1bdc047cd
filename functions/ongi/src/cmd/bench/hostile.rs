//! `ongi bench hostile`: memory bombs against every route of a real `ongi serve`, at once,
//! with the server's memory sampled.
//!
//! The bombs are small files that declare huge images:
//! - PNGs of all-zero rows, which compress a thousandfold: 10000x9999 16-bit RGBA (about
//!   0.8 GB of decoder output), 10000x9999 8-bit grey, 5000x5000 16-bit RGBA;
//! - JPEGs of a few hundred bytes whose frame header declares 9999x9999 (progressive and
//!   baseline): a decoder allocates for the declared size before it finds the data missing.
//!
//! - metadata bombs: a 1x1 PNG with a 45 MB `eXIf` chunk of NUL bytes, a PNG of about
//!   600 kB whose `iCCP` profile inflates to 600 MiB, an extended WebP with a 45 MB EXIF
//!   chunk, and a JPEG with 700 ICC-profile segments (45 MB) that jpeg-decoder would keep;
//!
//! and one heavy but well-formed photo, a 5000x5000 16-bit RGBA PNG of all-zero rows (200 kB
//! of file, 375 MiB to decode at most), which fits the default decode budget: it may be
//! analysed, under the budget, or refused as `too_large`, never decoded beside the others
//! past the budget.
//!
//! Each bomb comes in `--variants` copies that differ by a trailer after the image's end
//! (decoders ignore it, the content hash does not), so no copy is answered from another's
//! remembered failure. Every album route then gets `--concurrency` calls at once, each with
//! every bomb and one ordinary photo; the style route gets one call per bomb. A route is
//! *held* when every answer is 201 (style: 400 for a bomb, 202 or 400 `too_large` for the
//! heavy photo) with every bomb in `invalid_images` and the ordinary photo analysed. One JSON line comes out; the command exits 1 if the server died,
//! a route was not held, or its resident memory went over `--max-rss-mib`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::serve::{self, rss_mib};

pub struct HostileOptions {
    pub models: PathBuf,
    pub concurrency: usize,
    pub variants: usize,
    pub max_rss_mib: f64,
    /// Another `ongi` binary to serve (e.g. an older build, for a before/after figure).
    pub server_bin: Option<PathBuf>,
}

/// A bomb: its name stem, what it declares, and its bytes.
struct Bomb {
    stem: &'static str,
    ext: &'static str,
    declares: &'static str,
    bytes: Vec<u8>,
    /// Whether it must be refused; otherwise it is heavy but well formed, and may be analysed.
    must_refuse: bool,
}

/// A PNG of `height` all-zero rows, streamed through the encoder (never held whole).
fn zero_png(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    let mut stream = writer.stream_writer()?;
    let row = vec![0u8; (width as usize) * color.samples() * (depth as usize).div_ceil(8)];
    for _ in 0..height {
        stream.write_all(&row)?;
    }
    stream.finish()?;
    writer.finish()?;
    Ok(out)
}

/// `jpeg` with its frame header rewritten to declare `width`x`height`.
fn declaring(jpeg: &[u8], width: u16, height: u16) -> anyhow::Result<Vec<u8>> {
    let mut out = jpeg.to_vec();
    let mut i = 2;
    while i + 9 < out.len() && out[i] == 0xFF {
        let length = usize::from(u16::from_be_bytes([out[i + 2], out[i + 3]]));
        if matches!(out[i + 1], 0xC0..=0xC2) {
            out[i + 5..i + 7].copy_from_slice(&height.to_be_bytes());
            out[i + 7..i + 9].copy_from_slice(&width.to_be_bytes());
            return Ok(out);
        }
        i += 2 + length;
    }
    bail!("no JPEG frame header found")
}

/// A 1x1 RGB PNG.
fn pixel_png() -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(1, 1, image::Rgb([128, 128, 128])).write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// `png` with one more chunk before `IEND`, its CRC right so that a decoder reads it.
fn with_png_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let iend = png.len().checked_sub(12).context("not a PNG")?;
    let mut out = png[..iend].to_vec();
    out.extend(u32::try_from(data.len())?.to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.sum().to_be_bytes());
    out.extend(&png[iend..]);
    Ok(out)
}

/// An `iCCP` chunk's data: a name, the compression method, `inflated` zero bytes as zlib.
fn iccp_bomb(inflated: usize) -> anyhow::Result<Vec<u8>> {
    let mut data = b"bomb\0\0".to_vec();
    let mut encoder = flate2::write::ZlibEncoder::new(&mut data, flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..inflated.div_ceil(block.len()) {
        encoder.write_all(&block)?;
    }
    encoder.finish()?;
    Ok(data)
}

/// A 16x16 extended WebP (its VP8X announces EXIF) carrying `exif` as its EXIF chunk.
fn webp_with_exif(exif: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut simple = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(16, 16, image::Rgb([128, 128, 128])).write_to(&mut simple, image::ImageFormat::WebP)?;
    let simple = simple.into_inner();
    let chunk = |fourcc: &[u8], data: &[u8]| -> anyhow::Result<Vec<u8>> {
        let mut c = fourcc.to_vec();
        c.extend(u32::try_from(data.len())?.to_le_bytes());
        c.extend(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        Ok(c)
    };
    let mut body = b"WEBP".to_vec();
    // flags (0x08: EXIF), 3 reserved bytes, canvas width - 1 and height - 1 (24 bits each)
    body.extend(chunk(b"VP8X", &[0x08, 0, 0, 0, 15, 0, 0, 15, 0, 0])?);
    body.extend(simple.get(12..).context("not a WebP")?);
    body.extend(chunk(b"EXIF", exif)?);
    let mut out = b"RIFF".to_vec();
    out.extend(u32::try_from(body.len())?.to_le_bytes());
    out.extend(body);
    Ok(out)
}

/// `jpeg` with `count` full-size ICC-profile segments (APP2) after its SOI.
fn with_icc_segments(jpeg: &[u8], count: usize) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for i in 0..count {
        out.extend([0xFF, 0xE2, 0xFF, 0xFF]);
        out.extend(b"ICC_PROFILE\0");
        out.extend([(i % 255 + 1) as u8, 255]);
        out.extend(std::iter::repeat_n(0x55, 0xFFFF - 2 - 14));
    }
    out.extend(&jpeg[2..]);
    out
}

/// `jpeg` (progressive) with its scans, from the first SOS to EOI, repeated `times` times:
/// each scan is a pass over every block of the frame, however few bytes it holds.
fn with_repeated_scans(jpeg: &[u8], times: usize) -> anyhow::Result<Vec<u8>> {
    let first_scan = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .context("no JPEG scan found")?;
    let end = jpeg.len().checked_sub(2).context("not a JPEG")?;
    let mut out = jpeg[..first_scan].to_vec();
    for _ in 0..times {
        out.extend(&jpeg[first_scan..end]);
    }
    out.extend(&jpeg[end..]);
    Ok(out)
}

/// Small JPEGs (64x48) from the decoder's test corpus, to forge frame headers on.
const PROGRESSIVE_JPEG: &[u8] = include_bytes!("../../../../../shared/tests/fixtures/images/progressive.jpg");
const BASELINE_JPEG: &[u8] = include_bytes!("../../../../../shared/tests/fixtures/images/baseline.jpg");

fn bombs() -> anyhow::Result<Vec<Bomb>> {
    use png::{BitDepth, ColorType};
    Ok(vec![
        Bomb {
            stem: "rgba16-10000x9999",
            ext: "png",
            declares: "10000x9999 16-bit RGBA PNG",
            bytes: zero_png(10000, 9999, ColorType::Rgba, BitDepth::Sixteen)?,
            must_refuse: true,
        },
        Bomb {
            stem: "gray8-10000x9999",
            ext: "png",
            declares: "10000x9999 8-bit grey PNG",
            bytes: zero_png(10000, 9999, ColorType::Grayscale, BitDepth::Eight)?,
            must_refuse: true,
        },
        Bomb {
            stem: "heavy-rgba16-5000x5000",
            ext: "png",
            declares: "5000x5000 16-bit RGBA PNG",
            bytes: zero_png(5000, 5000, ColorType::Rgba, BitDepth::Sixteen)?,
            must_refuse: false,
        },
        Bomb {
            stem: "progressive-9999x9999",
            ext: "jpg",
            declares: "9999x9999 progressive JPEG",
            bytes: declaring(PROGRESSIVE_JPEG, 9999, 9999)?,
            must_refuse: true,
        },
        Bomb {
            stem: "baseline-9999x9999",
            ext: "jpg",
            declares: "9999x9999 baseline JPEG",
            bytes: declaring(BASELINE_JPEG, 9999, 9999)?,
            must_refuse: true,
        },
        Bomb {
            stem: "exif-45mb",
            ext: "png",
            declares: "1x1 PNG with a 45 MB eXIf chunk",
            bytes: with_png_chunk(&pixel_png()?, b"eXIf", &vec![0; 45_000_000])?,
            must_refuse: true,
        },
        Bomb {
            stem: "iccp-600mib",
            ext: "png",
            declares: "1x1 PNG whose iCCP profile inflates to 600 MiB",
            bytes: with_png_chunk(&pixel_png()?, b"iCCP", &iccp_bomb(600 << 20)?)?,
            must_refuse: true,
        },
        Bomb {
            stem: "exif-45mb",
            ext: "webp",
            declares: "16x16 WebP with a 45 MB EXIF chunk",
            bytes: webp_with_exif(&vec![0; 45_000_000])?,
            must_refuse: true,
        },
        Bomb {
            stem: "scans-4096x4096",
            ext: "jpg",
            declares: "4096x4096 progressive JPEG with its scans repeated 2,000 times",
            bytes: with_repeated_scans(&declaring(PROGRESSIVE_JPEG, 4096, 4096)?, 2000)?,
            must_refuse: true,
        },
        Bomb {
            stem: "icc-700-segments",
            ext: "jpg",
            declares: "64x48 JPEG with 700 ICC-profile segments (45 MB)",
            bytes: with_icc_segments(BASELINE_JPEG, 700),
            must_refuse: true,
        },
    ])
}

/// An ordinary photo every call also carries: the rest of the album must still be analysed.
fn ordinary_photo() -> anyhow::Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x ^ y) & 0xFF) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

const ORDINARY: &str = "hostile/ordinary.png";

/// Writes the bombs' variants into `bucket` and returns their object names, each with
/// whether it must be refused.
fn plant(bucket: &Path, bombs: &[Bomb], variants: usize) -> anyhow::Result<Vec<(String, bool)>> {
    std::fs::create_dir_all(bucket.join("hostile"))?;
    std::fs::write(bucket.join(ORDINARY), ordinary_photo()?)?;
    let mut names = Vec::new();
    for bomb in bombs {
        for v in 0..variants {
            let name = format!("hostile/{}-{v}.{}", bomb.stem, bomb.ext);
            let mut bytes = bomb.bytes.clone();
            bytes.extend_from_slice(format!("ongi-hostile-{v}").as_bytes());
            std::fs::write(bucket.join(&name), bytes).with_context(|| format!("cannot write {name}"))?;
            names.push((name, bomb.must_refuse));
        }
    }
    Ok(names)
}

/// What one route made of its calls.
#[derive(Default)]
struct RouteReport {
    statuses: BTreeMap<u16, u64>,
    /// Bombs and heavy photos that came back in `invalid_images`, by reason.
    refused_by_reason: BTreeMap<String, u64>,
    /// Heavy photos that were analysed.
    heavy_analysed: u64,
    /// Bombs that were not refused, and photos that were wrongly (each a failure to hold).
    missed: Vec<String>,
    /// The first error sentence of a call that was not answered as expected.
    error: Option<String>,
}

impl RouteReport {
    fn held(&self, expected: &[u16]) -> bool {
        self.missed.is_empty()
            && self.error.is_none()
            && !self.statuses.is_empty()
            && self.statuses.keys().all(|s| expected.contains(s))
    }
}

fn album_body(route: &str, images: &[String]) -> Value {
    match route {
        "score" => json!({"categories": [{"category": "hostile", "images": images}]}),
        "categories" => json!({"images": images, "concepts": ["a photo"]}),
        _ => json!({ "images": images }),
    }
}

/// Records one answer: its status, and which of `sent` (names, and whether each must be
/// refused) came back in `invalid_images`.
fn record(report: &mut RouteReport, status: u16, body: &Value, sent: &[(String, bool)]) {
    *report.statuses.entry(status).or_default() += 1;
    let invalid: BTreeMap<&str, &str> = body["invalid_images"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| Some((i["image"].as_str()?, i["reason"].as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    let answered = matches!(status, 201 | 202);
    for (name, must_refuse) in sent {
        let ordinary = name.as_str() == ORDINARY;
        match invalid.get(name.as_str()) {
            Some(reason) if ordinary || (!must_refuse && *reason != "too_large") => {
                report.missed.push(format!("{name} refused ({reason})"));
            }
            Some(reason) => *report.refused_by_reason.entry((*reason).to_owned()).or_default() += 1,
            None if *must_refuse => report.missed.push(format!("{name} not refused")),
            None if !ordinary && answered => report.heavy_analysed += 1,
            None => {}
        }
    }
    if report.error.is_none()
        && !matches!(status, 201 | 202 | 400)
        && let Some(e) = body["error"].as_str()
    {
        report.error = Some(e.to_owned());
    }
}

pub async fn run(options: HostileOptions) -> anyhow::Result<()> {
    if options.concurrency == 0 || options.variants == 0 {
        bail!("--concurrency and --variants must be at least 1");
    }
    let made = Instant::now();
    let bombs = bombs()?;
    let data = std::env::temp_dir().join(format!("ongi-bench-hostile-{}", std::process::id()));
    let names = plant(&data.join("uploads"), &bombs, options.variants)?;
    let make_s = made.elapsed().as_secs_f64();
    let log_path = std::env::temp_dir().join(format!("ongi-bench-hostile-{}.log", std::process::id()));
    let with_style = std::env::var_os("REDIS_URL").is_some();
    let mut server = serve::start(options.server_bin.as_deref(), &options.models, data, &[], &log_path)?;
    let pid = server.pid();
    let base = server.base_url();
    let rss_start = rss_mib(pid).unwrap_or(0.0);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while !done.load(Ordering::Relaxed) {
                if let Some(mib) = rss_mib(pid) {
                    peak = peak.max(mib);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };

    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let mut album: Vec<(String, bool)> = names.clone();
    album.push((ORDINARY.to_owned(), false));
    let album = Arc::new(album);
    let routes = ["embedding", "categories", "duplicates", "quality", "score", "people"];
    let began = Instant::now();
    let mut calls = Vec::new();
    for route in routes {
        for _ in 0..options.concurrency {
            let (client, base, album) = (client.clone(), base.clone(), album.clone());
            calls.push(tokio::spawn(async move {
                let images: Vec<String> = album.iter().map(|(name, _)| name.clone()).collect();
                let answer = client
                    .post(format!("{base}/api/albums/{route}"))
                    .json(&album_body(route, &images))
                    .send()
                    .await;
                (route, album.to_vec(), answer_of(answer).await)
            }));
        }
    }
    if with_style {
        for sent in &names {
            let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
            calls.push(tokio::spawn(async move {
                let answer = client
                    .post(format!("{base}/api/albums/style"))
                    .json(&json!({"image": sent.0, "style": "ghibli"}))
                    .send()
                    .await;
                ("style", vec![sent], answer_of(answer).await)
            }));
        }
    }
    let mut reports: BTreeMap<&str, RouteReport> = BTreeMap::new();
    for call in calls {
        let (route, sent, (status, body)) = call.await?;
        record(reports.entry(route).or_default(), status, &body, &sent);
    }
    let wall = began.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let rss_peak = sampler.await?.max(rss_start);
    let exited = server.exited().map(|s| s.to_string());
    drop(server);

    let route_json: BTreeMap<&str, Value> = reports
        .iter()
        .map(|(route, r)| {
            let expected: &[u16] = if *route == "style" { &[202, 400] } else { &[201] };
            (
                *route,
                json!({
                    "held": r.held(expected),
                    "statuses": r.statuses,
                    "refused_by_reason": r.refused_by_reason,
                    "heavy_analysed": r.heavy_analysed,
                    "missed": r.missed.iter().take(10).collect::<Vec<_>>(),
                    "error": r.error,
                }),
            )
        })
        .collect();
    let all_held = route_json.values().all(|r| r["held"] == true);
    let within_memory = rss_peak <= options.max_rss_mib;
    let report = json!({
        "config": "hostile",
        "bombs": bombs
            .iter()
            .map(|b| json!({"name": b.stem, "declares": b.declares, "bytes": b.bytes.len(), "must_refuse": b.must_refuse}))
            .collect::<Vec<_>>(),
        "variants": options.variants,
        "concurrency": options.concurrency,
        "photos_per_album_call": album.len(),
        "style": with_style,
        "routes": route_json,
        "make_bombs_s": make_s,
        "wall_s": wall,
        "rss_start_mib": rss_start,
        "rss_peak_mib": rss_peak,
        "max_rss_mib": options.max_rss_mib,
        "server_exited": exited,
        "ok": all_held && within_memory && exited.is_none(),
    });
    println!("{report}");
    if let Some(exit) = exited {
        bail!(
            "ongi serve died under the bombs ({exit}); its log: {}",
            log_path.display()
        );
    }
    if !all_held {
        bail!("a route let a bomb through or failed; see \"routes\"");
    }
    if !within_memory {
        bail!(
            "ongi serve's memory peaked at {rss_peak:.0} MiB, over {:.0} MiB",
            options.max_rss_mib
        );
    }
    let _ = std::fs::remove_file(&log_path);
    Ok(())
}

/// The status and JSON body of an answer; status 0 for no answer.
async fn answer_of(answer: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}
