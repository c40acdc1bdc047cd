//! Format sniffing from magic bytes. The name of a file says nothing (the app renames
//! every upload to `<uuid>.webp`); its first bytes do. Formats we cannot decode are still
//! recognised, so the caller is told "GIF is not supported" rather than "corrupt".

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    WebP,
    /// HEIF with HEVC (the iPhone's default), decoded by libheif (cargo feature `heif`).
    Heic,
    /// HEIF with AV1, decoded by libheif (cargo feature `heif`).
    Avif,
}

impl ImageFormat {
    /// The format's usual name, as messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
            Self::Heic => "HEIC",
            Self::Avif => "AVIF",
        }
    }
}

/// The formats this build decodes, as a word: part of the key under which a decode failure
/// is remembered, so a build that decodes more (HEIC and AVIF with the `heif` feature) gives
/// photos another build refused their chance again.
pub const DECODERS: &str = if cfg!(feature = "heif") {
    "jpeg+png+webp+heic+avif"
} else {
    "jpeg+png+webp"
};

/// What the first bytes say. HEIC and AVIF are `Supported` whether or not this build has
/// their decoder: the decoder says which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Supported(ImageFormat),
    /// A real image format we do not decode, by its usual name.
    Unsupported(&'static str),
    Unknown,
}

pub fn sniff(bytes: &[u8]) -> Sniffed {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Sniffed::Supported(ImageFormat::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Supported(ImageFormat::Png);
    }
    if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Sniffed::Supported(ImageFormat::WebP);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Sniffed::Unsupported("GIF");
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        // ISO base media: the major brand names the codec.
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"hevm" | b"hevs" => {
                Sniffed::Supported(ImageFormat::Heic)
            }
            // The generic HEIF brands: the compatible brands say whether it is AV1.
            b"mif1" | b"msf1" if compatible_brands(bytes).any(|b| b == b"avif" || b == b"avis") => {
                Sniffed::Supported(ImageFormat::Avif)
            }
            b"mif1" | b"msf1" => Sniffed::Supported(ImageFormat::Heic),
            b"avif" | b"avis" => Sniffed::Supported(ImageFormat::Avif),
            _ => Sniffed::Unsupported("ISO media (MP4/MOV)"),
        };
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Sniffed::Unsupported("TIFF");
    }
    if starts(b"BM") && bytes.len() >= 14 {
        return Sniffed::Unsupported("BMP");
    }
    if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0CJXL \r\n\x87\n") {
        return Sniffed::Unsupported("JPEG XL");
    }
    if starts(b"8BPS") {
        return Sniffed::Unsupported("PSD");
    }
    if starts(b"%PDF") {
        return Sniffed::Unsupported("PDF");
    }
    if starts(&[0, 0, 1, 0]) {
        return Sniffed::Unsupported("ICO");
    }
    Sniffed::Unknown
}

/// The compatible brands of an ISO base media file's `ftyp` box (size, `ftyp`, major brand,
/// minor version, then brands), as far as the box and the bytes go.
fn compatible_brands(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let size = bytes
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    bytes.get(16..size.min(bytes.len())).unwrap_or_default().chunks_exact(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_supported_and_unsupported_signatures() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Sniffed::Supported(ImageFormat::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Sniffed::Supported(ImageFormat::WebP));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Sniffed::Unknown);
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Sniffed::Supported(ImageFormat::Heic)
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypmif1\0\0\0\0"),
            Sniffed::Supported(ImageFormat::Heic)
        );
        assert_eq!(
            sniff(b"\0\0\0\x1cftypavif\0\0\0\0"),
            Sniffed::Supported(ImageFormat::Avif)
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypmif1\0\0\0\0miafavif"),
            Sniffed::Supported(ImageFormat::Avif)
        );
        // A brand past the box's own size is not the box's.
        assert_eq!(
            sniff(b"\0\0\0\x14ftypmif1\0\0\0\0miafavif"),
            Sniffed::Supported(ImageFormat::Heic)
        );
        assert_eq!(
            sniff(b"\0\0\0\x1cftypisom\0\0\0\0"),
            Sniffed::Unsupported("ISO media (MP4/MOV)")
        );
        assert_eq!(sniff(b"GIF89a\x01\0"), Sniffed::Unsupported("GIF"));
        assert_eq!(sniff(b"hello"), Sniffed::Unknown);
        assert_eq!(sniff(b""), Sniffed::Unknown);
    }
}
