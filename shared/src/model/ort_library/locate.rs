//! Finding `libonnxruntime.so` on this machine: the places it usually is, in the order a
//! user would expect them to win, without loading anything.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Settings;

/// The folder of the model folder where the fetched release archive's `lib/` files go.
pub const MODEL_FOLDER_RUNTIME: &str = "onnxruntime";

/// The oldest ONNX Runtime the `ort` crate accepts: 1.`ort::MINOR_VERSION` (its API level).
pub const MIN_MINOR: u32 = ort::MINOR_VERSION;

/// Longest wait for `python3` to say where its `onnxruntime` package is: a hung or slow
/// interpreter must not hold up start-up.
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(5);

/// The folders searched after `LD_LIBRARY_PATH`: where distributions and the release
/// archive's usual install instructions put the library.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/lib",
    "/usr/lib",
    #[cfg(target_arch = "x86_64")]
    "/usr/lib/x86_64-linux-gnu",
    #[cfg(target_arch = "aarch64")]
    "/usr/lib/aarch64-linux-gnu",
    "/opt/onnxruntime/lib",
];

/// Where pip puts packages, each holding `python3.X/{site,dist}-packages`: scanned without
/// running Python, for a machine whose `python3` is not the one that has `onnxruntime`.
const PYTHON_ROOTS: &[&str] = &["/usr/local/lib", "/usr/lib"];

/// The one-liner that prints the folder of the importable `onnxruntime` package.
const PYTHON_PROBE: &str = "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))";

/// Where a library was found, as the start-up log says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundIn {
    /// `ORT_DYLIB_PATH`.
    Setting,
    /// The model folder (`<dir>/onnxruntime/lib`, where `ongi models fetch` unpacks it, or `<dir>`).
    ModelFolder,
    /// An installed Python `onnxruntime` package (its `capi/` folder).
    PythonPackage,
    /// `LD_LIBRARY_PATH` or a system library folder.
    LibraryPath,
}

impl fmt::Display for FoundIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Setting => "ORT_DYLIB_PATH",
            Self::ModelFolder => "the model folder",
            Self::PythonPackage => "the Python onnxruntime package",
            Self::LibraryPath => "the library path",
        })
    }
}

/// One library file that may be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtLibrary {
    pub path: PathBuf,
    pub found_in: FoundIn,
    /// From the file name (`libonnxruntime.so.1.32.0`, or the file a `libonnxruntime.so`
    /// link points at), when it says.
    pub version: Option<Vec<u32>>,
}

impl fmt::Display for OrtLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.path.display(), self.found_in)
    }
}

/// Where to look. [`Search::from_settings`] is what the binaries use; tests point each
/// place at folders of their own.
#[derive(Debug, Clone)]
pub struct Search {
    /// `ORT_DYLIB_PATH`: when set, the only candidate.
    pub explicit: Option<PathBuf>,
    pub model_dir: PathBuf,
    /// The command that runs Python (`python3`), with any leading arguments; empty: Python
    /// is not run.
    pub python: Vec<OsString>,
    pub python_timeout: Duration,
    /// Folders holding `python3.X/{site,dist}-packages`, scanned without running Python.
    pub python_roots: Vec<PathBuf>,
    /// `LD_LIBRARY_PATH`, then the system folders.
    pub library_dirs: Vec<PathBuf>,
}

impl Search {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            explicit: settings.ort_dylib_path.clone(),
            model_dir: settings.model_dir.clone(),
            python: vec!["python3".into()],
            python_timeout: PYTHON_TIMEOUT,
            python_roots: PYTHON_ROOTS.iter().map(PathBuf::from).collect(),
            library_dirs: settings
                .library_path
                .iter()
                .cloned()
                .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
                .collect(),
        }
    }
}

/// What [`locate`] found: the candidates, best first, and the libraries it passed over.
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub candidates: Vec<OrtLibrary>,
    /// One line per library not tried, saying why (too old).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LocateError {
    #[error(
        "ORT_DYLIB_PATH={} is not a file: point it at libonnxruntime.so.1.32.0, or unset it to let Ongi find the library",
        .0.display()
    )]
    ExplicitMissing(PathBuf),
}

/// The ONNX Runtime libraries on this machine, best first: `ORT_DYLIB_PATH` alone when it
/// is set (a wrong path is an error, never a silent fallback); otherwise the model folder,
/// an installed Python `onnxruntime` package (asking `python3`, bounded by
/// `python_timeout`, and scanning the usual site-packages folders), then `library_dirs`.
/// Within one place the highest version comes first; a library whose name says it is older
/// than ONNX Runtime 1.[`MIN_MINOR`] is passed over and named in [`Located::skipped`].
pub fn locate(search: &Search) -> Result<Located, LocateError> {
    if let Some(path) = &search.explicit {
        if !path.is_file() {
            return Err(LocateError::ExplicitMissing(path.clone()));
        }
        return Ok(Located {
            candidates: vec![OrtLibrary {
                path: path.clone(),
                found_in: FoundIn::Setting,
                version: version_of(path),
            }],
            skipped: Vec::new(),
        });
    }
    let mut places: Vec<(FoundIn, Vec<PathBuf>)> = vec![(
        FoundIn::ModelFolder,
        vec![
            search.model_dir.join(MODEL_FOLDER_RUNTIME).join("lib"),
            search.model_dir.clone(),
        ],
    )];
    let mut python_dirs: Vec<PathBuf> = python_package_dir(&search.python, search.python_timeout)
        .into_iter()
        .collect();
    python_dirs.extend(site_package_dirs(&search.python_roots));
    places.push((
        FoundIn::PythonPackage,
        python_dirs.iter().map(|d| d.join("capi")).collect(),
    ));
    places.push((FoundIn::LibraryPath, search.library_dirs.clone()));

    let mut located = Located::default();
    let mut seen: Vec<PathBuf> = Vec::new();
    for (found_in, dirs) in places {
        let mut in_place: Vec<OrtLibrary> = Vec::new();
        for dir in dirs {
            for path in library_files(&dir) {
                // The same file under several names (`.so` → `.so.1` → `.so.1.32.0`) is one candidate.
                let Ok(real) = std::fs::canonicalize(&path) else {
                    continue;
                };
                if seen.contains(&real) {
                    continue;
                }
                seen.push(real);
                let version = version_of(&path);
                if let Some(v) = &version
                    && too_old(v)
                {
                    located.skipped.push(format!(
                        "{}: ONNX Runtime {}, older than the 1.{MIN_MINOR} this build needs",
                        path.display(),
                        dotted(v)
                    ));
                    continue;
                }
                in_place.push(OrtLibrary {
                    path,
                    found_in: found_in.clone(),
                    version,
                });
            }
        }
        // Highest version first; a library whose name gives no version last.
        in_place.sort_by(|a, b| b.version.cmp(&a.version));
        located.candidates.extend(in_place);
    }
    Ok(located)
}

/// `1.32.0`.
pub(super) fn dotted(version: &[u32]) -> String {
    version.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

fn too_old(version: &[u32]) -> bool {
    match version {
        [major, minor, ..] => (*major, *minor) < (1, MIN_MINOR),
        // `libonnxruntime.so.1` says only the major version: the load decides.
        _ => false,
    }
}

/// The version in `libonnxruntime.so.1.32.0`, or in the name of the file a link points at.
fn version_of(path: &Path) -> Option<Vec<u32>> {
    let from_name = |p: &Path| -> Option<Vec<u32>> {
        let name = p.file_name()?.to_str()?;
        let digits = name.strip_prefix("libonnxruntime.so.")?;
        digits.split('.').map(|d| d.parse().ok()).collect()
    };
    let named = from_name(path);
    let real = std::fs::canonicalize(path).ok().and_then(|p| from_name(&p));
    // The link's target is the more precise (`.so.1` → `.so.1.32.0`).
    match (named, real) {
        (Some(a), Some(b)) => Some(if b.len() > a.len() { b } else { a }),
        (a, b) => b.or(a),
    }
}

/// The files named `libonnxruntime.so` or `libonnxruntime.so.*` in `dir` (following links),
/// sorted by name. A folder that cannot be read has none.
fn library_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// `<root>/python3.X/{site,dist}-packages/onnxruntime` for each root, where present.
fn site_package_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else { continue };
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path())
            .collect();
        pythons.sort();
        for python in pythons {
            for packages in ["site-packages", "dist-packages"] {
                let dir = python.join(packages).join("onnxruntime");
                if dir.is_dir() {
                    dirs.push(dir);
                }
            }
        }
    }
    dirs
}

/// The folder of the `onnxruntime` package that `command` imports, or `None` (no Python, no
/// package, or no answer within `timeout`: the child is then killed).
fn python_package_dir(command: &[OsString], timeout: Duration) -> Option<PathBuf> {
    let (program, args) = command.split_first()?;
    let mut child = Command::new(program)
        .args(args)
        .args(["-c", PYTHON_PROBE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(
                    "{} did not say within {timeout:?} where its onnxruntime package is: not asked further",
                    program.to_string_lossy()
                );
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    // One path: a few KiB at most is read, whatever the child printed.
    let mut out = String::new();
    child.stdout.take()?.take(64 * 1024).read_to_string(&mut out).ok()?;
    let dir = PathBuf::from(out.trim());
    (dir.is_absolute() && dir.is_dir()).then_some(dir)
}

#[cfg(test)]
mod tests;
