//! The capture time (EXIF `DateTimeOriginal`) of JPEGs, from the decoder to the `similar`
//! duplicate tier's "shot within 10 minutes" test. The photos are JPEGs encoded here with an
//! EXIF APP1 segment written by kamadak-exif, as a camera writes them.

use ongi_shared::analysis::duplicate::NEAR_HAMMING;
use ongi_shared::config::IngestLimits;
use ongi_shared::functions::Functions;
use ongi_shared::image::features::{hamming, phash, to_gray};
use ongi_shared::image::{DecodeOptions, decode};
use ongi_test_support::{ExifFields, jpeg_with_exif};
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::support::{redis_url, required_env, spawn_app, unique_prefix};

/// A view: a smooth gradient with a bright disc off centre (320x240).
fn view() -> image::RgbImage {
    image::RgbImage::from_fn(320, 240, |x, y| {
        let (dx, dy) = (x as f32 - 100.0, y as f32 - 90.0);
        if dx * dx + dy * dy < 50.0 * 50.0 {
            image::Rgb([240, 220, 90])
        } else {
            image::Rgb([(x * 255 / 320) as u8, (y * 255 / 240) as u8, 140])
        }
    })
}

fn jpeg_dated(img: &image::RgbImage, datetime: &str) -> Vec<u8> {
    jpeg_with_exif(
        img,
        ExifFields {
            datetime_original: Some(datetime),
            ..Default::default()
        },
    )
}

#[test]
fn a_jpegs_capture_time_is_read_from_its_exif() {
    let limits = IngestLimits::default();
    let seconds = |datetime: &str| {
        decode(&jpeg_dated(&view(), datetime), &limits, DecodeOptions::default())
            .expect("the JPEG decodes")
            .captured_at
    };
    assert_eq!(seconds("2024:07:14 10:20:30"), Some(1_720_952_430));
    assert_eq!(
        seconds("2024:07:14 10:20:30")
            .zip(seconds("2020:07:14 10:20:30"))
            .map(|(a, b)| a - b),
        Some(1461 * 86_400),
        "four years, one leap day"
    );
    // A blank date (what cameras without a clock write) is no capture time, not an error.
    assert_eq!(seconds("    :  :     :  :  "), None);
    // EXIF without a date: no capture time.
    let plain = jpeg_with_exif(
        &view(),
        ExifFields {
            orientation: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(
        decode(&plain, &limits, DecodeOptions::default()).unwrap().captured_at,
        None
    );
}

/// The same view twice, the second mirrored: a reframed retake, whose pHash is too far for
/// the `near` tier, so only the `similar` tier (CLIP, here told to accept every pair) and
/// its capture-time test decide.
#[tokio::test]
async fn the_same_view_on_another_day_is_not_a_similar_duplicate() {
    let first = view();
    let mirrored = image::imageops::flip_horizontal(&first);
    let distance = hamming(phash(&to_gray(&first)), phash(&to_gray(&mirrored)));
    assert!(
        distance > NEAR_HAMMING,
        "the pair must be out of the near tier for this test to mean anything ({distance} bits)"
    );
    let app = spawn_app(
        Functions::all(),
        &[
            ("ONGI_MODEL_DIR", &models_dir().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &unique_prefix()),
            ("ONGI_QUALITY_CLIP_PROBABILITY", "0"),
            // The tiny CLIP has random weights: every pair passes the cosine, so the capture
            // time alone decides.
            ("ONGI_DUPLICATE_COSINE", "-1"),
        ],
    )
    .await;
    let dir = app.data_dir().join("uploads/t");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, img, datetime) in [
        ("2020.jpg", &first, "2020:05:01 12:00:00"),
        ("2024.jpg", &mirrored, "2024:05:01 12:00:00"),
        ("12h00.jpg", &first, "2024:05:01 12:00:00"),
        ("12h05.jpg", &mirrored, "2024:05:01 12:05:00"),
    ] {
        std::fs::write(dir.join(name), jpeg_dated(img, datetime)).unwrap();
    }
    let groups = async |names: [&'static str; 2]| -> Vec<Value> {
        let body: Value = app
            .post_json("/api/albums/duplicates?detail=true", &json!({ "images": names }))
            .await
            .json()
            .await
            .unwrap();
        body["data"].as_array().cloned().unwrap_or_else(|| panic!("{body}"))
    };
    let years_apart = groups(["t/2020.jpg", "t/2024.jpg"]).await;
    assert_eq!(years_apart, Vec::<Value>::new(), "four years apart: not a retake");
    let minutes_apart = groups(["t/12h00.jpg", "t/12h05.jpg"]).await;
    assert_eq!(minutes_apart.len(), 1, "five minutes apart: a retake {minutes_apart:?}");
    let members = minutes_apart[0]["duplicates"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{minutes_apart:?}");
    assert_eq!(members[0]["tier"], "similar", "{minutes_apart:?}");
}
