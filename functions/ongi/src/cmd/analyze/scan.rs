//! The photo folder `ongi analyze` reads: every photo below it by name, what was left out
//! and why, and what could not be read at all.

use std::path::Path;

use ongi_shared::album::InvalidImage;
use ongi_shared::domain::Reason;
use ongi_shared::image::is_photo_name;

#[derive(Debug, Default)]
pub(super) struct Found {
    /// Object names (paths inside the folder, `/`-separated), sorted.
    pub(super) photos: Vec<String>,
    pub(super) skipped: Vec<String>,
    pub(super) unreadable: Vec<InvalidImage>,
}

pub(super) fn unreadable(image: String, reason: Reason, detail: impl Into<String>) -> InvalidImage {
    InvalidImage {
        image,
        reason,
        detail: Some(detail.into()),
    }
}

/// Every photo under `dir`, subfolders included. Hidden files and folders (`.git`,
/// `._IMG_1.jpg` resource forks) and the report folder are left out; symlinked folders are
/// not followed (they could loop), symlinked files are read if they stay inside the folder.
pub(super) fn scan(dir: &Path, out: &Path) -> std::io::Result<Found> {
    let mut found = Found::default();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if prefix.is_empty() => return Err(e),
            Err(e) => {
                found.unreadable.push(unreadable(
                    prefix.trim_end_matches('/').to_owned(),
                    Reason::UnreadableFolder,
                    e.to_string(),
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    found
                        .unreadable
                        .push(unreadable(prefix.clone(), Reason::UnreadableFolder, e.to_string()));
                    continue;
                }
            };
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                found.unreadable.push(unreadable(
                    format!("{prefix}{}", file_name.to_string_lossy()),
                    Reason::InvalidName,
                    "the file name is not UTF-8",
                ));
                continue;
            };
            let path = entry.path();
            if name.starts_with('.') || path == out {
                continue;
            }
            let rel = format!("{prefix}{name}");
            let linked = entry.file_type().is_ok_and(|t| t.is_symlink());
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    found.unreadable.push(unreadable(rel, Reason::NotFound, e.to_string()));
                    continue;
                }
            };
            if meta.is_dir() {
                if linked {
                    found.skipped.push(format!("{rel}/ (a linked folder is not followed)"));
                } else {
                    pending.push((path, format!("{rel}/")));
                }
            } else if is_photo_name(name) {
                found.photos.push(rel);
            } else {
                found.skipped.push(rel);
            }
        }
    }
    found.photos.sort();
    found.skipped.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::analyze::DEFAULT_OUT;

    #[test]
    fn scan_walks_subfolders_and_leaves_out_hidden_files_and_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("trip/day 1")).unwrap();
        std::fs::create_dir_all(root.join(".thumbnails")).unwrap();
        std::fs::create_dir_all(root.join(DEFAULT_OUT)).unwrap();
        for f in [
            "a.jpg",
            "trip/b.PNG",
            "trip/day 1/c.webp",
            "notes.txt",
            ".hidden.jpg",
            ".thumbnails/t.jpg",
            "ongi-report/report.html",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let found = scan(root, &root.join(DEFAULT_OUT)).unwrap();
        assert_eq!(found.photos, vec!["a.jpg", "trip/b.PNG", "trip/day 1/c.webp"]);
        assert_eq!(found.skipped, vec!["notes.txt"]);
        assert!(found.unreadable.is_empty());
    }
}
