//! HEIC and AVIF (ongi-shared's `heif` feature, through libheif) on files made here by the
//! Debian encoders: `heif-enc` (libheif-examples; `-A` for AVIF) and `avifenc` (libavif-bin,
//! which can write an `irot` rotation). `.ci/run` installs both; under CI a missing one
//! fails the test, elsewhere the test says it is skipped.

use std::path::Path;
use std::process::Command;

use image::{Rgb, RgbImage};
use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodeOptions, DecodedImage, ImageError, ImageFormat, decode, estimate};
use ongi_test_support::{ExifFields, exif_block, jpeg_with_exif};

use crate::analyses_api::png;

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

/// 64x48, stored quadrants: top left red, top right green, bottom left blue, bottom right white.
fn quadrants() -> RgbImage {
    RgbImage::from_fn(64, 48, |x, y| {
        Rgb(match (x < 32, y < 24) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => WHITE,
        })
    })
}

/// `Some(name)` where the program is on PATH; `None` (after a SKIPPED line) where it is
/// missing outside CI. Under CI a missing encoder fails the test.
fn tool<'a>(name: &'a str, package: &str) -> Option<&'a str> {
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    if found {
        return Some(name);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} is not installed: .ci/run installs it (Debian package {package})"
    );
    eprintln!("SKIPPED: {name} is not installed (Debian package {package})");
    None
}

/// Runs an encoder in `dir` and returns the file it wrote.
fn encode(dir: &Path, program: &str, args: &[&str], output: &str) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join(output)).unwrap_or_else(|e| panic!("{program} wrote no {output}: {e}"))
}

/// The quadrants as HEIC, or AVIF (`-A`), by heif-enc from a PNG or the JPEG given.
fn heif_enc(source: Option<Vec<u8>>, avif: bool) -> Option<Vec<u8>> {
    let program = tool("heif-enc", "libheif-examples")?;
    let dir = tempfile::tempdir().unwrap();
    let input = match source {
        Some(jpeg) => {
            std::fs::write(dir.path().join("in.jpg"), jpeg).unwrap();
            "in.jpg"
        }
        None => {
            std::fs::write(dir.path().join("in.png"), png(&quadrants())).unwrap();
            "in.png"
        }
    };
    let output = if avif { "out.avif" } else { "out.heic" };
    let mut args = vec!["-q", "90", input, "-o", output];
    if avif {
        args.push("-A");
    }
    Some(encode(dir.path(), program, &args, output))
}

/// The quadrants as AVIF by avifenc, with `extra` arguments (`--irot`, `--exif`).
fn avifenc(extra: &[&str], exif: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let program = tool("avifenc", "libavif-bin")?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.png"), png(&quadrants())).unwrap();
    let mut args = vec!["-s", "10", "--min", "0", "--max", "10"];
    args.extend_from_slice(extra);
    if let Some(block) = exif {
        std::fs::write(dir.path().join("exif.tiff"), block).unwrap();
        args.extend_from_slice(&["--exif", "exif.tiff"]);
    }
    args.extend_from_slice(&["in.png", "out.avif"]);
    Some(encode(dir.path(), program, &args, "out.avif"))
}

fn full(bytes: &[u8]) -> Result<DecodedImage, ImageError> {
    decode(bytes, &IngestLimits::default(), DecodeOptions::default())
}

/// Each quadrant's centre is its colour (within lossy coding's error), in the order
/// top left, top right, bottom left, bottom right.
fn assert_quadrants(img: &DecodedImage, want: [[u8; 3]; 4], what: &str) {
    let (w, h) = (img.pixels.width(), img.pixels.height());
    let centres = [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ];
    for ((x, y), colour) in centres.into_iter().zip(want) {
        let got = img.pixels.get_pixel(x, y).0;
        let off = (0..3)
            .map(|c| (i32::from(got[c]) - i32::from(colour[c])).abs())
            .max()
            .unwrap();
        assert!(off <= 40, "{what}: pixel ({x},{y}) is {got:?}, want about {colour:?}");
    }
}

#[test]
fn heic_and_avif_decode_to_the_right_size_and_colours() {
    for (avif, format) in [(false, ImageFormat::Heic), (true, ImageFormat::Avif)] {
        let Some(bytes) = heif_enc(None, avif) else { return };
        let cost = estimate(&bytes, &IngestLimits::default(), DecodeOptions::default()).expect("estimate");
        assert_eq!((cost.format, cost.width, cost.height), (format, 64, 48));
        assert!(
            cost.peak_bytes >= 64 * 48 * 3 && cost.output_bytes == 64 * 48 * 3,
            "{cost:?}"
        );
        let img = full(&bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(img.format, format);
        assert_eq!((img.pixels.width(), img.pixels.height()), (64, 48));
        assert_eq!(
            (img.source_width, img.source_height, img.scale_denominator),
            (64, 48, 1)
        );
        assert_quadrants(&img, [RED, GREEN, BLUE, WHITE], &format!("{format:?}"));
        assert_eq!(img.captured_at, None);
    }
}

/// A phone's photo: stored sideways with an `irot` rotation, and an EXIF Orientation that
/// says the same (6, turn 90° clockwise). It must be turned once, not twice.
#[test]
fn the_heif_rotation_is_applied_once_and_the_exif_orientation_not_again() {
    let exif = exif_block(ExifFields {
        orientation: Some(6),
        ..Default::default()
    });
    // irot 3: 270° anticlockwise, i.e. 90° clockwise.
    let Some(bytes) = avifenc(&["--irot", "3"], Some(exif)) else {
        return;
    };
    let img = full(&bytes).expect("the rotated AVIF decodes");
    assert_eq!(
        (img.pixels.width(), img.pixels.height()),
        (48, 64),
        "turned a quarter, once"
    );
    assert_eq!((img.source_width, img.source_height), (48, 64));
    assert_eq!(img.exif_orientation, 1, "the EXIF tag is not applied");
    // Turned 90° clockwise: the bottom-left quadrant comes to the top left.
    assert_quadrants(&img, [BLUE, RED, WHITE, GREEN], "irot 3");
}

#[test]
fn the_capture_time_comes_from_the_heif_exif_block() {
    let at = |datetime: &'static str| ExifFields {
        datetime_original: Some(datetime),
        ..Default::default()
    };
    // heif-enc copies a JPEG's EXIF into the HEIC; avifenc takes a TIFF block.
    let Some(heic) = heif_enc(Some(jpeg_with_exif(&quadrants(), at("2024:07:14 10:20:30"))), false) else {
        return;
    };
    assert_eq!(full(&heic).expect("HEIC decodes").captured_at, Some(1_720_952_430));
    let Some(avif) = avifenc(&[], Some(exif_block(at("2020:07:14 10:20:30")))) else {
        return;
    };
    let img = full(&avif).expect("AVIF decodes");
    assert_eq!(img.captured_at, Some(1_720_952_430 - 1461 * 86_400));
}

#[test]
fn broken_heif_files_are_clear_errors() {
    let Some(bytes) = heif_enc(None, false) else { return };
    let reason = |b: &[u8]| full(b).map(|_| ()).map_err(|e| (e.reason().to_string(), e.to_string()));
    for cut in [bytes.len() / 2, bytes.len() - 10, 40] {
        let (why, message) = reason(&bytes[..cut]).expect_err("a truncated HEIC is refused");
        assert_eq!(why, "corrupt", "{cut} bytes: {message}");
        assert!(message.contains("HEIC"), "{message}");
    }
    // The real ftyp box, then garbage.
    let mut garbage = bytes[..24].to_vec();
    garbage.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
    assert_eq!(reason(&garbage).unwrap_err().0, "corrupt");
}

#[test]
fn an_oversized_heif_is_refused_by_the_estimate_before_decoding() {
    let Some(bytes) = heif_enc(None, false) else { return };
    let few_pixels = IngestLimits {
        max_pixels: 1000,
        ..IngestLimits::default()
    };
    let e = estimate(&bytes, &few_pixels, DecodeOptions::default()).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge(_)), "{e}");
    assert!(e.to_string().contains("64x48"), "{e}");
    // Smaller than one side: libheif's own limit refuses it while parsing.
    let tiny = IngestLimits {
        max_pixels: 16,
        ..IngestLimits::default()
    };
    assert!(full(&bytes).is_ok());
    assert!(matches!(
        decode(&bytes, &tiny, DecodeOptions::default()),
        Err(ImageError::TooLarge(_))
    ));
    let little_memory = IngestLimits {
        max_decode_bytes: 64 * 1024,
        ..IngestLimits::default()
    };
    let e = estimate(&bytes, &little_memory, DecodeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("decode limit"), "{e}");
}

/// The estimate is an upper bound of the memory a decode takes, for every bit depth and
/// chroma layout the encoders write (HEIC: x265 through heif-enc; AVIF: aom through avifenc).
/// Each photo is decoded in a process of its own (this test binary, running only
/// [`peak_of_one_decode`]), whose peak RSS the kernel keeps.
#[test]
fn heif_estimates_bound_the_memory_of_every_depth_and_chroma_layout() {
    let (Some(avifenc), Some(heif_enc)) = (tool("avifenc", "libavif-bin"), tool("heif-enc", "libheif-examples")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    // 1600x1200 at 16 bits a sample, a smooth gradient: the encoders take it at every depth.
    let source = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(1600, 1200, |x, y| {
        image::Rgb([(x * 40) as u16, (y * 54) as u16, ((x + y) * 23) as u16])
    });
    source.save(at("in16.png")).unwrap();
    // heif-enc makes 8-bit files from 8-bit input only.
    image::DynamicImage::ImageRgb16(source)
        .to_rgb8()
        .save(at("in8.png"))
        .unwrap();
    // A tiny photo of each codec, decoded first in the child: the codecs' code and tables
    // are loaded then, and are not the photo's.
    std::fs::write(at("warm.png"), png(&quadrants())).unwrap();
    let fast_heic = ["-p", "preset=ultrafast", "-q", "50"];
    encode(dir.path(), avifenc, &["-s", "10", "warm.png", "warm.avif"], "warm.avif");
    let mut args = fast_heic.to_vec();
    args.extend(["warm.png", "-o", "warm.heic"]);
    encode(dir.path(), heif_enc, &args, "warm.heic");

    let mut cases = Vec::new();
    for depth in ["8", "10", "12"] {
        let input = if depth == "8" { "in8.png" } else { "in16.png" };
        for yuv in ["420", "422", "444"] {
            let name = format!("avif-{depth}bit-{yuv}.avif");
            let args = ["-s", "10", "-d", depth, "-y", yuv, input, name.as_str()];
            encode(dir.path(), avifenc, &args, &name);
            cases.push((name, "warm.avif"));
        }
        for chroma in ["420", "444"] {
            let name = format!("heic-{depth}bit-{chroma}.heic");
            let chroma = format!("chroma={chroma}");
            let mut args = fast_heic.to_vec();
            if depth != "8" {
                args.extend(["-b", depth]);
            }
            args.extend(["-p", chroma.as_str(), input, "-o", name.as_str()]);
            encode(dir.path(), heif_enc, &args, &name);
            cases.push((name, "warm.heic"));
        }
    }
    let mut report = String::new();
    let mut under = Vec::new();
    for (name, warm) in &cases {
        let (peak, estimate) = measured_peak(&at(name), &at(warm));
        report += &format!(
            "{name}: peak {} KiB, estimate {} KiB ({:.2} of it)\n",
            peak >> 10,
            estimate >> 10,
            peak as f64 / estimate as f64
        );
        if peak > estimate {
            under.push(name.as_str());
        }
    }
    eprint!("{report}");
    assert!(
        under.is_empty(),
        "estimates under the measured peak: {under:?}\n{report}"
    );
}

/// Decodes `photo` in a child process after `warm`, and returns its peak RSS above the RSS
/// before the decode, and its estimate, both in bytes.
fn measured_peak(photo: &Path, warm: &Path) -> (u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "heif_decode::peak_of_one_decode",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ONGI_PEAK_OF", photo)
        .env("ONGI_PEAK_WARM", warm)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}\n{}",
        photo.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints the test's name before its output, on the same line.
    let numbers: Vec<u64> = stdout
        .split_once("PEAK ")
        .unwrap_or_else(|| panic!("the child printed no PEAK line: {stdout}"))
        .1
        .split_whitespace()
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

/// The child half of the test above, run in a process of its own with the photo in
/// `ONGI_PEAK_OF`: prints `PEAK <peak bytes> <estimate bytes>`.
#[test]
#[ignore = "run by heif_estimates_bound_the_memory_of_every_depth_and_chroma_layout, which sets ONGI_PEAK_OF"]
fn peak_of_one_decode() {
    let photo = std::fs::read(std::env::var("ONGI_PEAK_OF").expect("ONGI_PEAK_OF names the photo")).unwrap();
    let warm = std::fs::read(std::env::var("ONGI_PEAK_WARM").expect("ONGI_PEAK_WARM names a tiny photo")).unwrap();
    full(&warm).unwrap();
    let estimate = estimate(&photo, &IngestLimits::default(), DecodeOptions::default())
        .unwrap()
        .peak_bytes;
    // Writing 5 resets the peak RSS (VmHWM) to the RSS now (proc(5), /proc/pid/clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS");
    let decoded = full(&photo).unwrap();
    let peak = status_kib("VmHWM");
    assert_eq!(decoded.pixels.width(), 1600);
    println!("PEAK {} {estimate}", peak.saturating_sub(before) << 10);
}

/// A `/proc/self/status` figure, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}
