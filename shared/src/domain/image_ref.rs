//! Image references as the app backend sends them (docs/api.md): an object
//! name in the configured uploads bucket (`3f1c….webp`) or a full `gs://bucket/object`.
//! Anything else is refused here, once, with a reason that names the problem, so no
//! storage backend ever sees a path that could leave its bucket and no URL is ever fetched.

use std::fmt;

use super::BucketName;

/// GCS's own limit on object names.
pub const MAX_REF_BYTES: usize = 1024;

/// A validated reference. Two references are equal (and hash alike) when they name the same
/// object, however they are spelled: `a.jpg` and `gs://uploads/a.jpg` are one photo once
/// [`ImageRef::within`] has placed both in the served bucket `uploads`. An album that lists a
/// photo under two spellings therefore has it once: a duplicate group can never pair a photo
/// with itself (and an app that deletes the non-keepers never deletes the keeper).
#[derive(Debug, Clone)]
pub struct ImageRef {
    raw: String,
    bucket: Option<BucketName>,
    object: String,
}

impl PartialEq for ImageRef {
    fn eq(&self, other: &Self) -> bool {
        self.bucket == other.bucket && self.object == other.object
    }
}

impl Eq for ImageRef {}

impl std::hash::Hash for ImageRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bucket.hash(state);
        self.object.hash(state);
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RefError {
    #[error("the reference is empty")]
    Empty,
    #[error("the reference is longer than {MAX_REF_BYTES} bytes")]
    TooLong,
    #[error("the reference contains a control character")]
    ControlCharacter,
    #[error("the reference starts with '/': give an object name or gs://bucket/object")]
    Absolute,
    #[error("the reference contains a '.' or '..' path segment")]
    DotSegment,
    #[error("the reference contains an empty path segment ('//')")]
    EmptySegment,
    #[error("the reference contains a backslash")]
    Backslash,
    #[error("only object names and gs://bucket/object references are accepted; URLs are never fetched")]
    Url,
    #[error("the gs:// reference names an invalid bucket")]
    InvalidBucket,
    #[error("the gs:// reference names no object")]
    NoObject,
}

impl ImageRef {
    pub fn parse(raw: &str) -> Result<Self, RefError> {
        if raw.is_empty() {
            return Err(RefError::Empty);
        }
        if raw.len() > MAX_REF_BYTES {
            return Err(RefError::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(RefError::ControlCharacter);
        }
        let (bucket, object) = if let Some(rest) = raw.strip_prefix("gs://") {
            let (bucket, object) = rest.split_once('/').ok_or(RefError::NoObject)?;
            let bucket = BucketName::parse(bucket).map_err(|_| RefError::InvalidBucket)?;
            if object.is_empty() {
                return Err(RefError::NoObject);
            }
            (Some(bucket), object)
        } else if raw.contains("://") {
            return Err(RefError::Url);
        } else {
            (None, raw)
        };
        if object.starts_with('/') {
            return Err(RefError::Absolute);
        }
        if object.contains('\\') {
            return Err(RefError::Backslash);
        }
        for segment in object.split('/') {
            match segment {
                "." | ".." => return Err(RefError::DotSegment),
                "" => return Err(RefError::EmptySegment),
                _ => {}
            }
        }
        Ok(Self {
            raw: raw.to_owned(),
            bucket,
            object: object.to_owned(),
        })
    }

    /// The same reference with the bucket left implicit when it is `served`, the bucket
    /// that object names without `gs://` mean: `gs://uploads/a.jpg` becomes the same
    /// photo as `a.jpg` (still shown as the caller spelled it).
    pub fn within(mut self, served: &BucketName) -> Self {
        if self.bucket.as_ref() == Some(served) {
            self.bucket = None;
        }
        self
    }

    /// The reference exactly as the caller sent it (echoed back in responses).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The bucket a `gs://` reference names, if any.
    pub fn bucket(&self) -> Option<&BucketName> {
        self.bucket.as_ref()
    }

    /// The object name inside its bucket; never empty, never absolute, no dot segments.
    pub fn object(&self) -> &str {
        &self.object
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_object_names_and_gs_references() {
        let r = ImageRef::parse("3f1c0a.webp").unwrap();
        assert_eq!(r.object(), "3f1c0a.webp");
        assert!(r.bucket().is_none());
        let r = ImageRef::parse("gs://uploads/albums/42/a.jpg").unwrap();
        assert_eq!(r.bucket().unwrap().as_str(), "uploads");
        assert_eq!(r.object(), "albums/42/a.jpg");
        assert_eq!(r.as_str(), "gs://uploads/albums/42/a.jpg");
        // Unicode object names are legal in GCS.
        assert!(ImageRef::parse("사진/하늘.jpg").is_ok());
    }

    #[test]
    fn one_object_is_one_reference_however_it_is_spelled() {
        let served = BucketName::parse("uploads").unwrap();
        let short = ImageRef::parse("a.jpg").unwrap().within(&served);
        let long = ImageRef::parse("gs://uploads/a.jpg").unwrap().within(&served);
        assert_eq!(short, long);
        assert_eq!(long.as_str(), "gs://uploads/a.jpg", "shown as the caller spelled it");
        assert!(long.bucket().is_none());
        let set: std::collections::HashSet<ImageRef> = [short.clone(), long].into_iter().collect();
        assert_eq!(set.len(), 1);
        // Another bucket's object of the same name is another photo.
        let other = ImageRef::parse("gs://other/a.jpg").unwrap().within(&served);
        assert_ne!(short, other);
        assert_ne!(short, ImageRef::parse("b.jpg").unwrap());
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        let long = "a".repeat(MAX_REF_BYTES + 1);
        let cases: &[(&str, RefError)] = &[
            ("", RefError::Empty),
            (&long, RefError::TooLong),
            ("a\nb.jpg", RefError::ControlCharacter),
            ("a\u{0}.jpg", RefError::ControlCharacter),
            ("/etc/passwd", RefError::Absolute),
            ("../secret.jpg", RefError::DotSegment),
            ("a/../../b.jpg", RefError::DotSegment),
            ("./a.jpg", RefError::DotSegment),
            ("a//b.jpg", RefError::EmptySegment),
            ("a\\..\\b.jpg", RefError::Backslash),
            ("https://example.com/a.jpg", RefError::Url),
            ("file:///etc/passwd", RefError::Url),
            ("gs://Bad!/a.jpg", RefError::InvalidBucket),
            ("gs://uploads", RefError::NoObject),
            ("gs://uploads/", RefError::NoObject),
            ("gs://uploads//etc/passwd", RefError::Absolute),
            ("gs://uploads/../results/x", RefError::DotSegment),
        ];
        for (raw, want) in cases {
            assert_eq!(ImageRef::parse(raw).as_ref(), Err(want), "{raw:?}");
        }
        // Exactly at the limit is fine.
        assert!(ImageRef::parse(&"a".repeat(MAX_REF_BYTES)).is_ok());
    }
}
