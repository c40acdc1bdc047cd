//! Taking the library out of an ONNX Runtime release archive (`.tgz`): only the
//! `<top>/lib/libonnxruntime.so*` files, written into a folder of ours, from an archive that
//! is refused whole if any entry could reach outside it.
//!
//! Written over the `tar` crate's entry reader rather than its `unpack`: `unpack` writes
//! every entry (headers, CMake files, links anywhere inside the target), and what is wanted
//! here is two or three named files with bounds on their size.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

/// Entries read before the archive is refused (a release has a few hundred).
const MAX_ENTRIES: usize = 10_000;
/// The largest library file taken out (the 1.32 CPU library is about 35 MB).
const MAX_FILE_BYTES: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot read the archive: {0}")]
    Read(String),
    #[error("the archive's entry {entry:?} {why}: refused")]
    Unsafe { entry: String, why: &'static str },
    #[error("the archive has more than {MAX_ENTRIES} entries: refused")]
    TooManyEntries,
    #[error("the archive's {entry} is larger than {MAX_FILE_BYTES} bytes: refused")]
    TooLarge { entry: String },
    #[error("the archive has no {top}/lib/libonnxruntime.so file")]
    NoLibrary { top: String },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
}

/// Writes the `<top>/lib/libonnxruntime.so*` files and links of the gzip'd tar `archive`
/// into `into/lib/`, and returns their names. Any entry with an absolute path or a `..`
/// refuses the archive, as does a library link that points anywhere but at a sibling file
/// taken out with it.
pub fn unpack_library(archive: &Path, top: &str, into: &Path) -> Result<Vec<String>, UnpackError> {
    let read_error = |e: io::Error| UnpackError::Read(e.to_string());
    let file = File::open(archive).map_err(read_error)?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let lib = into.join("lib");
    std::fs::create_dir_all(&lib).map_err(|e| UnpackError::Write {
        path: lib.clone(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<String> = Vec::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for (n, entry) in tar.entries().map_err(read_error)?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(UnpackError::TooManyEntries);
        }
        let mut entry = entry.map_err(read_error)?;
        let path = entry.path().map_err(read_error)?.into_owned();
        let shown = path.display().to_string();
        let Some(name) = library_name(&path, top, &shown)? else {
            continue;
        };
        if files.contains(&name) || links.iter().any(|(l, _)| *l == name) {
            return Err(UnpackError::Unsafe {
                entry: shown,
                why: "appears twice",
            });
        }
        let kind = entry.header().entry_type();
        let dest = lib.join(&name);
        let write_error = |e: io::Error| UnpackError::Write {
            path: dest.clone(),
            reason: e.to_string(),
        };
        if kind.is_file() {
            let mut out = File::create(&dest).map_err(write_error)?;
            let copied = io::copy(&mut (&mut entry).take(MAX_FILE_BYTES + 1), &mut out).map_err(write_error)?;
            if copied > MAX_FILE_BYTES {
                return Err(UnpackError::TooLarge { entry: shown });
            }
            out.sync_all().map_err(write_error)?;
            files.push(name);
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(read_error)?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A sibling's plain name, never a path: the link cannot lead out of `lib/`.
            if target.is_empty() || target.contains('/') || !target.starts_with("libonnxruntime.so") {
                return Err(UnpackError::Unsafe {
                    entry: shown,
                    why: "is a link to something other than a library beside it",
                });
            }
            links.push((name, target));
        } else {
            return Err(UnpackError::Unsafe {
                entry: shown,
                why: "is neither a file nor a link",
            });
        }
    }
    // Links last, once every file they may point at is known: a link into nothing is refused.
    for (name, target) in &links {
        if !files.contains(target) && !links.iter().any(|(l, _)| l == target) {
            return Err(UnpackError::Unsafe {
                entry: format!("{top}/lib/{name}"),
                why: "is a link to a file the archive does not have",
            });
        }
        let dest = lib.join(name);
        std::os::unix::fs::symlink(target, &dest).map_err(|e| UnpackError::Write {
            path: dest.clone(),
            reason: e.to_string(),
        })?;
    }
    if files.is_empty() {
        return Err(UnpackError::NoLibrary { top: top.to_owned() });
    }
    let mut names = files;
    names.extend(links.into_iter().map(|(l, _)| l));
    names.sort();
    Ok(names)
}

/// The file name when `path` is `<top>/lib/libonnxruntime.so*`; `None` for any other safe
/// entry; an error for an entry that is absolute or climbs with `..`.
fn library_name(path: &Path, top: &str, shown: &str) -> Result<Option<String>, UnpackError> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(UnpackError::Unsafe {
                    entry: shown.to_owned(),
                    why: "climbs out with ..",
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Unsafe {
                    entry: shown.to_owned(),
                    why: "is an absolute path",
                });
            }
        }
    }
    Ok(match parts.as_slice() {
        [t, l, name]
            if t == top && l == "lib" && (name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")) =>
        {
            Some(name.clone())
        }
        _ => None,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tar::{EntryType, Header};

    use super::*;

    /// What an archive entry is.
    pub(in crate::model) enum Item<'a> {
        File(&'a [u8]),
        Link(&'a str),
    }

    /// A gzip'd tar of `items`, names written as given (even `../x`, which the `tar` crate's
    /// own path setters refuse: the header is filled by hand).
    pub(in crate::model) fn tgz(items: &[(&str, Item<'_>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, item) in items {
            let mut header = Header::new_gnu();
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_mode(0o644);
            let data: &[u8] = match item {
                Item::File(bytes) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    bytes
                }
                Item::Link(target) => {
                    header.set_entry_type(EntryType::Symlink);
                    header.set_link_name(target).unwrap();
                    header.set_size(0);
                    &[]
                }
            };
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn unpack(items: &[(&str, Item<'_>)]) -> (tempfile::TempDir, Result<Vec<String>, UnpackError>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tgz");
        std::fs::write(&archive, tgz(items)).unwrap();
        let into = dir.path().join("out");
        let result = unpack_library(&archive, "ort-1.32.0", &into);
        (dir, result)
    }

    #[test]
    fn only_the_library_files_and_links_are_taken_out() {
        let (dir, names) = unpack(&[
            ("ort-1.32.0/include/onnxruntime_c_api.h", Item::File(b"header")),
            ("ort-1.32.0/lib/libonnxruntime.so.1.32.0", Item::File(b"the library")),
            (
                "ort-1.32.0/lib/libonnxruntime.so.1",
                Item::Link("libonnxruntime.so.1.32.0"),
            ),
            ("ort-1.32.0/lib/libonnxruntime.so", Item::Link("libonnxruntime.so.1")),
            ("ort-1.32.0/lib/pkgconfig/libonnxruntime.pc", Item::File(b"pc")),
            ("ort-1.32.0/lib/libonnxruntime_providers_shared.so", Item::File(b"eps")),
        ]);
        let lib = dir.path().join("out/lib");
        assert_eq!(
            names.unwrap(),
            ["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.32.0"]
        );
        assert_eq!(std::fs::read(lib.join("libonnxruntime.so")).unwrap(), b"the library");
        assert_eq!(
            ongi_test_support::file_names(&lib),
            ["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.32.0"]
        );
    }

    #[test]
    fn an_archive_with_a_path_that_climbs_out_is_refused_and_writes_nothing_outside() {
        let (dir, result) = unpack(&[
            ("ort-1.32.0/lib/libonnxruntime.so.1.32.0", Item::File(b"the library")),
            ("../evil", Item::File(b"evil")),
        ]);
        let e = result.unwrap_err();
        assert!(matches!(e, UnpackError::Unsafe { .. }), "{e:?}");
        assert!(e.to_string().contains("../evil"), "{e}");
        assert!(!dir.path().join("evil").exists());
        let (_dir, result) = unpack(&[("/etc/evil", Item::File(b"evil"))]);
        assert!(result.unwrap_err().to_string().contains("absolute"));
    }

    #[test]
    fn a_library_link_that_leads_out_is_refused() {
        for target in ["/etc/passwd", "../../libonnxruntime.so", "libonnxruntime.so.9.9.9"] {
            let (dir, result) = unpack(&[
                ("ort-1.32.0/lib/libonnxruntime.so.1.32.0", Item::File(b"the library")),
                ("ort-1.32.0/lib/libonnxruntime.so", Item::Link(target)),
            ]);
            let e = result.unwrap_err();
            assert!(matches!(e, UnpackError::Unsafe { .. }), "{target}: {e:?}");
            assert!(
                std::fs::symlink_metadata(dir.path().join("out/lib/libonnxruntime.so")).is_err(),
                "{target}: no link was made"
            );
        }
    }

    #[test]
    fn an_archive_without_the_library_is_refused() {
        let (_dir, result) = unpack(&[("ort-1.32.0/include/onnxruntime_c_api.h", Item::File(b"h"))]);
        assert!(matches!(result, Err(UnpackError::NoLibrary { .. })), "{result:?}");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tgz");
        std::fs::write(&archive, b"not gzip at all").unwrap();
        let e = unpack_library(&archive, "ort-1.32.0", &dir.path().join("out")).unwrap_err();
        assert!(matches!(e, UnpackError::Read(_)), "{e:?}");
    }
}
