//! Photos made at test time, with the metadata a camera writes: an EXIF block (kamadak-exif's
//! writer) in a JPEG's APP1 segment (jpeg-encoder, which writes any APP segment it is given).

use exif::{Field, In, Tag, Value};
use image::RgbImage;

/// What a test photo's EXIF block says.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExifFields<'a> {
    /// `DateTimeOriginal`, in EXIF's `YYYY:MM:DD HH:MM:SS`.
    pub datetime_original: Option<&'a str>,
    /// `Orientation`, 1 to 8.
    pub orientation: Option<u16>,
}

/// A TIFF-format EXIF block (what follows `Exif\0\0` in a JPEG's APP1 segment). It needs at
/// least one field.
pub fn exif_block(fields: ExifFields) -> Vec<u8> {
    let mut list = Vec::new();
    if let Some(t) = fields.datetime_original {
        list.push(Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![t.as_bytes().to_vec()]),
        });
    }
    if let Some(o) = fields.orientation {
        list.push(Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![o]),
        });
    }
    let mut writer = exif::experimental::Writer::new();
    for field in &list {
        writer.push_field(field);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer
        .write(&mut tiff, false)
        .expect("kamadak-exif writes the test fields");
    tiff.into_inner()
}

/// `img` as a baseline JPEG (quality 90) with `fields` in an EXIF APP1 segment.
pub fn jpeg_with_exif(img: &RgbImage, fields: ExifFields) -> Vec<u8> {
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(exif_block(fields));
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder
        .add_app_segment(1, app1)
        .expect("the EXIF block fits one APP1 segment");
    let (w, h) = (
        u16::try_from(img.width()).expect("a test photo's width fits JPEG's 16 bits"),
        u16::try_from(img.height()).expect("a test photo's height fits JPEG's 16 bits"),
    );
    encoder
        .encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg-encoder encodes an RGB image");
    out
}
