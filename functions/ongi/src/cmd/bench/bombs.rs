//! The hostile files `ongi bench hostile` sends: small files that declare huge images or
//! carry huge metadata, one heavy but well-formed photo, and the ordinary photos around them.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

/// A bomb: its name stem, what it declares, and its bytes.
pub struct Bomb {
    pub stem: &'static str,
    pub ext: &'static str,
    pub declares: &'static str,
    pub bytes: Vec<u8>,
    /// Whether it must be refused; otherwise it is heavy but well formed, and may be analysed.
    pub must_refuse: bool,
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
/// A 1 kB AVIF declaring 5300x5300 at 12 bits, 4:4:4 (made by avifenc; see the folder's README).
const AVIF_12_BIT: &[u8] = include_bytes!("../../../../../shared/tests/fixtures/hostile/avif12-444-5300x5300.avif");

pub fn bombs() -> anyhow::Result<Vec<Bomb>> {
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
        Bomb {
            stem: "avif12-444-5300x5300",
            ext: "avif",
            declares: "5300x5300 12-bit 4:4:4 AVIF (about 830 MiB to decode)",
            bytes: AVIF_12_BIT.to_vec(),
            must_refuse: true,
        },
    ])
}

/// An ordinary photo every call also carries: the rest of the album must still be analysed.
fn ordinary_photo() -> anyhow::Result<Vec<u8>> {
    ordinary_variant(0)
}

/// A 640x480 PNG whose content differs with `seed`, so that no two are one photo.
fn ordinary_variant(seed: u32) -> anyhow::Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([
            (x / 3 + seed) as u8,
            (y / 2 + seed * 7) as u8,
            ((x ^ y ^ seed) & 0xFF) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

pub const ORDINARY: &str = "hostile/ordinary.png";

/// Writes the bombs' variants into `bucket` and returns their object names, each with
/// whether it must be refused.
pub fn plant(bucket: &Path, bombs: &[Bomb], variants: usize) -> anyhow::Result<Vec<(String, bool)>> {
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

/// Writes `count` distinct ordinary photos into `bucket` for the well-behaved caller, and
/// returns their object names.
pub fn plant_steady(bucket: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(bucket.join("steady"))?;
    (0..count)
        .map(|i| {
            let name = format!("steady/{i}.png");
            std::fs::write(bucket.join(&name), ordinary_variant(u32::try_from(i)? + 1)?)
                .with_context(|| format!("cannot write {name}"))?;
            Ok(name)
        })
        .collect()
}
