//! Hash stamps: the SHA-256 of each model file, remembered with the file's size and
//! modification time in `.ongi-sha256` in the file's own folder (`DIR/.ongi-sha256`, and
//! `DIR/sd15/.ongi-sha256` for `sd15/unet.safetensors`), keyed by the file's name there, so a
//! process that starts does not read the 350 MB CLIP graph again to learn a hash it already
//! knows.
//!
//! A stamp is written whenever a file's hash has been computed in full (`ongi models verify`,
//! a first start, a check by `fetch`) or checked by a verified download. It is trusted only
//! while the file keeps the size and the modification time (to the nanosecond) it had when
//! hashed: any write through the file system changes the time, so a changed file is hashed
//! again. `ongi models verify` never trusts a stamp: it is the full check.
//!
//! Stamps are best-effort: a folder that cannot be written (a read-only image) costs a full
//! hash at every start, as if there were no stamps, and never an error. Several processes may
//! write at once: each rewrites the whole file through a temporary file and a rename, so a
//! reader sees one complete version, and a stamp lost to a race only costs one more hash.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use super::verify::sha256_file;

/// The stamp file's name, in each folder of the model folder that holds model files.
pub const STAMP_FILE: &str = ".ongi-sha256";

/// A model folder holds a dozen files; a stamp file larger than this is not ours, and ignored.
const MAX_STAMP_BYTES: u64 = 64 << 10;

/// What a stamp remembers of a file besides its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    size: u64,
    mtime_ns: u128,
}

impl Fingerprint {
    fn of(path: &Path) -> io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        // A time before 1970 or a file system without times never matches a stamp (0 is
        // never written): such a file is hashed every time.
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            size: metadata.len(),
            mtime_ns,
        })
    }
}

/// One line of the stamp file: `<sha256> <size> <mtime ns> <file name>`.
struct Stamp {
    sha256: String,
    fingerprint: Fingerprint,
    name: String,
}

impl Stamp {
    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        let sha256 = parts.next()?;
        let size = parts.next()?.parse().ok()?;
        let mtime_ns = parts.next()?.parse().ok()?;
        let name = parts.next()?;
        let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (hex && !name.is_empty()).then(|| Self {
            sha256: sha256.to_owned(),
            fingerprint: Fingerprint { size, mtime_ns },
            name: name.to_owned(),
        })
    }

    fn line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.sha256, self.fingerprint.size, self.fingerprint.mtime_ns, self.name
        )
    }
}

/// The SHA-256 of `path`, lowercase hex: from its stamp while the file is unchanged, else
/// computed in full (and stamped).
pub fn sha256_stamped(path: &Path) -> io::Result<String> {
    let fingerprint = Fingerprint::of(path)?;
    if let Some((dir, name)) = split(path)
        && fingerprint.mtime_ns != 0
        && let Some(stamp) = read(dir).into_iter().find(|s| s.name == name)
        && stamp.fingerprint == fingerprint
    {
        return Ok(stamp.sha256);
    }
    let sha256 = sha256_file(path)?;
    // The file may have changed while it was read: stamp only what was there throughout.
    if Fingerprint::of(path)? == fingerprint {
        record_fingerprint(path, &sha256, fingerprint);
    }
    Ok(sha256)
}

/// Remembers that `path`, as it is now, has the SHA-256 `sha256` (just computed in full, or
/// checked by a verified download). Best-effort: a folder that cannot be written keeps no stamp.
pub fn record(path: &Path, sha256: &str) {
    if let Ok(fingerprint) = Fingerprint::of(path) {
        record_fingerprint(path, sha256, fingerprint);
    }
}

fn record_fingerprint(path: &Path, sha256: &str, fingerprint: Fingerprint) {
    let Some((dir, name)) = split(path) else { return };
    if fingerprint.mtime_ns == 0 || name.contains('\n') {
        return;
    }
    // Stamps of files that are gone are dropped, so the file stays as small as the folder.
    let mut stamps: Vec<Stamp> = read(dir)
        .into_iter()
        .filter(|s| s.name != name && dir.join(&s.name).is_file())
        .collect();
    stamps.push(Stamp {
        sha256: sha256.to_owned(),
        fingerprint,
        name: name.to_owned(),
    });
    let text: String = stamps.iter().map(Stamp::line).collect();
    // One temporary name per writer, threads of one process included.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!("{STAMP_FILE}.{}.{n}.tmp", std::process::id()));
    let written = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, dir.join(STAMP_FILE)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// The folder and the file name of `path`, when it has both as UTF-8.
fn split(path: &Path) -> Option<(&Path, &str)> {
    Some((path.parent()?, path.file_name()?.to_str()?))
}

/// The stamps of `dir`; none when the file is missing, unreadable or not ours.
fn read(dir: &Path) -> Vec<Stamp> {
    let Ok(file) = std::fs::File::open(dir.join(STAMP_FILE)) else {
        return Vec::new();
    };
    let mut text = String::new();
    if file.take(MAX_STAMP_BYTES + 1).read_to_string(&mut text).is_err() || text.len() as u64 > MAX_STAMP_BYTES {
        return Vec::new();
    }
    // Only whole lines: a line without its newline was cut short.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole.lines().filter_map(Stamp::parse).collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(bytes))
    }

    fn set_mtime(path: &Path, time: SystemTime) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(time).unwrap();
    }

    #[test]
    fn a_stamped_hash_is_read_back_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, b"model").unwrap();
        assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"model"));
        let stamps = std::fs::read_to_string(dir.path().join(STAMP_FILE)).unwrap();
        assert!(
            stamps.starts_with(&sha256_hex(b"model")) && stamps.ends_with(" m.onnx\n"),
            "{stamps}"
        );

        // A stamp that says something else about the same size and time is believed: this
        // shows the hash comes from the stamp, not from reading the file.
        let forged = stamps.replace(&sha256_hex(b"model"), &sha256_hex(b"other"));
        std::fs::write(dir.path().join(STAMP_FILE), forged).unwrap();
        assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"other"));
    }

    #[test]
    fn a_file_changed_in_size_or_time_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        std::fs::write(&path, b"model").unwrap();
        set_mtime(&path, when);
        sha256_stamped(&path).unwrap();

        // Same size, same time to the second, a nanosecond later: hashed again.
        std::fs::write(&path, b"MODEL").unwrap();
        set_mtime(&path, when + Duration::from_nanos(1));
        assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"MODEL"));
        // Same time, another size: hashed again.
        std::fs::write(&path, b"models").unwrap();
        set_mtime(&path, when + Duration::from_nanos(1));
        assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"models"));
    }

    #[test]
    fn stamps_of_other_files_are_kept_and_of_removed_files_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.onnx", "b.onnx", "c.onnx"] {
            std::fs::write(dir.path().join(name), name).unwrap();
            sha256_stamped(&dir.path().join(name)).unwrap();
        }
        std::fs::remove_file(dir.path().join("b.onnx")).unwrap();
        record(&dir.path().join("c.onnx"), &sha256_hex(b"c.onnx"));
        let names: Vec<String> = read(dir.path()).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a.onnx", "c.onnx"]);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "no temporary file is left behind: {left:?}");
    }

    #[test]
    fn a_damaged_or_foreign_stamp_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, b"model").unwrap();
        let fingerprint = Fingerprint::of(&path).unwrap();
        for junk in [
            format!("nothex {} {} m.onnx\n", fingerprint.size, fingerprint.mtime_ns),
            format!("{} x {} m.onnx\n", sha256_hex(b"other"), fingerprint.mtime_ns),
            format!(
                "{} {} {}\n",
                sha256_hex(b"other"),
                fingerprint.size,
                fingerprint.mtime_ns
            ),
            "x".repeat(MAX_STAMP_BYTES as usize + 1),
        ] {
            std::fs::write(dir.path().join(STAMP_FILE), junk).unwrap();
            assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"model"));
        }
    }

    #[test]
    fn a_stamp_that_cannot_be_written_still_gives_the_hash() {
        // A folder in the stamp file's place: neither root nor anyone can write it, and the
        // temporary file is cleaned up.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, b"model").unwrap();
        std::fs::create_dir(dir.path().join(STAMP_FILE)).unwrap();
        assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"model"));
        assert_eq!(sha256_stamped(&path).unwrap(), sha256_hex(b"model"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
