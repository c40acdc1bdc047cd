//! Which file names look like photos, for listings (a folder on disk, a bucket page) where
//! no bytes have been read yet. A name only chooses what to try: the bytes are sniffed
//! ([`super::sniff`]) and the decoder has the last word, so a "photo" it cannot read is a
//! failure with its reason, not a skip.

/// Extensions (lower case) that name a photo format, decodable or not: a photo Ongi cannot
/// decode (HEIC, AVIF, TIFF…) is still a photo, reported with why it was not read.
pub const PHOTO_EXTENSIONS: [&str; 13] = [
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "heic", "heif", "avif", "tif", "tiff", "bmp",
];

/// Whether the last `/`-separated part of `name` ends in a photo extension, in any case.
pub fn is_photo_name(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or_default();
    file.rsplit_once('.')
        .is_some_and(|(_, e)| PHOTO_EXTENSIONS.iter().any(|p| p.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_names_are_told_by_extension_in_any_case() {
        assert!(is_photo_name("IMG_0001.JPG"));
        assert!(is_photo_name("a.b.webp"));
        assert!(is_photo_name("x.heic"));
        assert!(!is_photo_name("notes.txt"));
        assert!(!is_photo_name("jpg"));
    }

    #[test]
    fn every_listed_extension_and_only_the_last_part_counts() {
        for e in PHOTO_EXTENSIONS {
            assert!(is_photo_name(&format!("album/photo.{e}")), "{e}");
            assert!(is_photo_name(&format!("photo.{}", e.to_ascii_uppercase())), "{e}");
        }
        assert!(is_photo_name("old/scan.JFIF"));
        assert!(is_photo_name("a/b.jpe"));
        assert!(!is_photo_name("photos.jpg/notes"));
        assert!(!is_photo_name("a/"));
        assert!(!is_photo_name("a/noext"));
        assert!(!is_photo_name("movie.mp4"));
        assert!(!is_photo_name(""));
    }
}
