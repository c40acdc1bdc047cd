//! [`SETTINGS`]: every environment variable Ongi reads, with its default and what it does.
//! It is the one list: `ongi serve --help` prints it ([`settings_help`]), a test checks it
//! against the names this module reads, and another against docs/settings.md.

use std::fmt::Write as _;

/// One environment variable, as `ongi serve --help` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDoc {
    pub name: &'static str,
    /// The value taken when the setting is unset, written as one would set it (a test sets
    /// each of these and finds the defaults unchanged); empty when unset means "none".
    pub default: &'static str,
    /// A word on the default: its unit, or when another setting changes it. May be empty.
    pub default_note: &'static str,
    /// What it does, in one line.
    pub what: &'static str,
}

impl SettingDoc {
    /// The default as shown: `8080`, `2592000 (30 days)`, `none (in-process cache)`.
    pub fn shown_default(&self) -> String {
        let value = if self.default.is_empty() { "none" } else { self.default };
        if self.default_note.is_empty() {
            value.to_owned()
        } else {
            format!("{value} ({})", self.default_note)
        }
    }
}

const fn doc(name: &'static str, default: &'static str, default_note: &'static str, what: &'static str) -> SettingDoc {
    SettingDoc {
        name,
        default,
        default_note,
        what,
    }
}

/// Every environment variable Ongi reads, grouped as docs/settings.md groups them.
// One row per setting, as a table reads; rustfmt would spread the longer rows over several lines.
#[rustfmt::skip]
pub const SETTINGS: &[SettingDoc] = &[
    doc("PORT", "8080", "", "port to listen on (Cloud Run sets it; `ongi serve --port` overrides it)"),
    doc("ONGI_HOST", "0.0.0.0", "`ongi serve`: 127.0.0.1", "address to bind"),
    doc("ONGI_MODEL_DIR", "models", "", "the model folder"),
    doc("ORT_DYLIB_PATH", "", "found: model folder, Python onnxruntime, library path", "the ONNX Runtime shared library (libonnxruntime.so.1.32.0); set, it is the only one tried"),
    doc("ONGI_ORT_DOWNLOAD_URL", "https://github.com/microsoft/onnxruntime/releases/download", "", "where `ongi models fetch` downloads the ONNX Runtime archive from (its SHA-256 is pinned)"),
    doc("LD_LIBRARY_PATH", "", "", "folders searched for libonnxruntime.so before /usr/local/lib, /usr/lib and /opt/onnxruntime/lib"),
    doc("REDIS_URL", "", "in-process cache", "redis://[:password@]host:port[/db]: the shared feature cache and the style queue"),
    doc("ONGI_CACHE_TTL_SECS", "2592000", "30 days", "time to live of cached features"),
    doc("ONGI_TEXT_CACHE_TTL_SECS", "86400", "1 day", "time to live of the text embeddings of callers' concepts"),
    doc("ONGI_TEXT_CACHE_KB_PER_MIN", "128", "128 KiB a minute", "KiB a minute that callers' texts (concepts, queries, the text route) may add to Redis, all callers of a process together (0: none)"),
    doc("ONGI_CACHE_PREFIX", "ongi:", "", "prefix of every Redis key: 1-128 visible characters, no spaces"),
    doc("ONGI_NEAR_CACHE_MB", "64", "", "in-process copy of recent features and text embeddings in front of Redis, in MiB (0: none); without Redis, the in-process cache's bound (at least 1 MiB)"),
    doc("ONGI_STORAGE", "local", "gcs when STORAGE_EMULATOR_HOST is set", "where photos are read from: local or gcs"),
    doc("ONGI_BUCKET", "uploads", "", "the photos bucket"),
    doc("ONGI_RESULTS_BUCKET", "results", "", "the style results bucket"),
    doc("ONGI_DATA_DIR", "data", "", "the local buckets: $ONGI_DATA_DIR/<bucket>/<object>"),
    doc("STORAGE_EMULATOR_HOST", "", "", "fake-gcs-server, e.g. http://127.0.0.1:4443 (anonymous credentials)"),
    doc("PUBSUB_EMULATOR_HOST", "", "", "the Pub/Sub emulator, host:port"),
    doc("GOOGLE_CLOUD_PROJECT", "", "", "the project (needed to publish, and for ONGI_STORAGE=gcs outside Cloud Run)"),
    doc("EMBEDDING_URL", "", "", "where the other functions compute missing features on Cloud Run"),
    doc("ONGI_FEATURES_TOPIC", "ongi-features", "", "Pub/Sub topic announcing cached features"),
    doc("ONGI_RESULTS_TOPIC", "ongi-results", "", "Pub/Sub topic of per-photo analysis results"),
    doc("ONGI_PUBLISH", "false", "true on Cloud Run or with PUBSUB_EMULATOR_HOST", "publish to Pub/Sub: true or false"),
    doc("GEMINI_API_KEY", "", "", "the key of the style prompt writer (never logged)"),
    doc("GEMINI_ENDPOINT", "https://generativelanguage.googleapis.com", "", "the Gemini API's base URL"),
    doc("GEMINI_MODEL", "gemini-2.5-flash", "", "the Gemini model that writes style prompts"),
    doc("ONGI_FACE_DETECTOR", "yunet", "", "the face detector: yunet or mtcnn"),
    doc("ONGI_LOG_FORMAT", "text", "json on Cloud Run", "json for Cloud Logging or readable text (on stderr)"),
    doc("K_SERVICE", "", "", "set by Cloud Run: JSON logs, publishing, and a missing model is a deployment error"),
    doc("ONGI_CATEGORY_FLOOR", "0.2", "", "tag similarity below which no tag is assigned (-1 to 1)"),
    doc("ONGI_DUPLICATE_COSINE", "0.95", "", "CLIP cosine of the `similar` duplicate tier (at least -1; above 1 turns it off)"),
    doc("ONGI_HIGHLIGHTS", "3", "", "highlights per category (1-1000)"),
    doc("ONGI_QUALITY_BLUR", "80", "", "Laplacian variance below which a photo is blurry (at least 0)"),
    doc("ONGI_QUALITY_DARK_FRACTION", "0.5", "", "fraction of crushed-black pixels above which a photo is underexposed"),
    doc("ONGI_QUALITY_BRIGHT_FRACTION", "0.4", "", "fraction of blown-white pixels above which a photo is overexposed"),
    doc("ONGI_QUALITY_CLIP_PROBABILITY", "0.1", "", "CLIP prompt-pair probability below which a photo looks bad (0 turns it off)"),
    doc("ONGI_MAX_IMAGE_BYTES", "52428800", "50 MiB", "photos larger than this are refused (too_large)"),
    doc("ONGI_MAX_IMAGE_PIXELS", "100000000", "", "photos with more pixels are refused from their header, before decoding"),
    doc("ONGI_DECODE_MEMORY_MB", "512", "", "memory for photos decoded at once in the whole process (16-65536)"),
    doc("ONGI_READ_TIMEOUT_SECS", "30", "", "a request's head, then its body, must arrive within this (1-600)"),
    doc("ONGI_STYLE_MAX_QUEUE", "50", "", "style jobs queued or running beyond which a submission gets 429"),
    doc("ONGI_STYLE_MAX_ATTEMPTS", "3", "", "failed or abandoned attempts before a job goes to the dead-letter stream"),
    doc("ONGI_STYLE_RECLAIM_SECS", "120", "", "a running job without a heartbeat for this long is taken over"),
    doc("ONGI_STYLE_JOB_TTL_SECS", "604800", "7 days", "how long style jobs and idempotency keys are kept"),
    doc("ONGI_STYLE_DEVICE", "auto", "", "the GPU worker's device: cuda, cpu, or auto (CUDA when built with it and a GPU answers)"),
    doc("ONGI_STYLE_STALL_SECS", "300", "", "the GPU worker's /healthz answers 503 after its job loop made no progress for this long"),
    doc("ONGI_REPROCESS_BUDGET_SECS", "50", "", "a reprocessing call starts no photo after this long (1-3600)"),
    doc("ONGI_REPROCESS_CONCURRENCY", "8", "", "photos one reprocessing call processes at once (1-1024)"),
    doc("ONGI_MAX_IN_FLIGHT", "64", "", "requests handled at once; one more is shed with 503 (1-100000)"),
    doc("ONGI_BODY_MEMORY_MB", "64", "", "request bodies held at once, in MiB, reserved as their bytes arrive; a body whose bytes find none left gets 503 (1-4096)"),
    doc("ONGI_MAX_CONNECTIONS", "1024", "", "open connections at once; past it new ones wait in the kernel's queue (1-100000)"),
    doc("ONGI_API_TOKEN", "", "", "a secret of 16+ characters: every route but /healthz then needs it as a bearer token"),
    doc("RUST_LOG", "info", "", "log filter"),
];

/// [`SETTINGS`] as help text: each name with its default, then what it does.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings (environment variables). Each has a default, so none is needed locally; \
         a malformed one stops start-up with one line naming it. An empty value counts as unset \
         (except for ONGI_CACHE_PREFIX).\n",
    );
    for s in SETTINGS {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\n  {}  [default: {}]\n      {}",
            s.name,
            s.shown_default(),
            s.what
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::config::Settings;

    /// `src` without its inline test module (`#[cfg(test)] mod tests { … }`, which ends a
    /// file); a `#[cfg(test)] mod tests;` declaration stays.
    fn without_tests(src: &str) -> &str {
        let inline = src.match_indices("#[cfg(test)]").find(|(at, attr)| {
            let Some(module) = src[at + attr.len()..].trim_start().strip_prefix("mod ") else {
                return false;
            };
            let name_end = module
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(module.len());
            module[name_end..].trim_start().starts_with('{')
        });
        inline.map_or(src, |(at, _)| &src[..at])
    }

    /// The string literals of `src` that look like environment variable names (capitals,
    /// digits and underscores), outside comment lines and the inline test module.
    fn env_literals(src: &str) -> BTreeSet<String> {
        let code = without_tests(src);
        let mut names = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(quote) = rest.find('"') {
                let after = &rest[quote + 1..];
                let len = after
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(after.len());
                let word = &after[..len];
                if len >= 2 && word.starts_with(|c: char| c.is_ascii_uppercase()) && after[len..].starts_with('"') {
                    names.insert(word.to_owned());
                    rest = &after[len + 1..];
                } else {
                    rest = after;
                }
            }
        }
        names
    }

    /// The names this module's sources read: every file of `src/config` but the table
    /// (which names them all) and the tests (which set them).
    fn names_read_by_config() -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
        let mut names = BTreeSet::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            assert!(!path.is_dir(), "{}: a folder the scan below would miss", path.display());
            if !file.ends_with(".rs") || file == "table.rs" || file == "tests.rs" {
                continue;
            }
            names.extend(env_literals(&std::fs::read_to_string(&path).unwrap()));
            files += 1;
        }
        // A scan that finds (almost) nothing is broken, not a sign of no settings.
        assert!(files >= 5 && names.len() >= 40, "{files} files, {names:?}");
        names
    }

    #[test]
    fn the_scan_finds_env_literals_and_nothing_else() {
        let src = "let a = get(\"ONGI_X\");\n// \"ONGI_Y\"\nlet b = (\"yes\", \"PORT\", \"ONGI_Z=1\", \"https://x\");\n#[cfg(test)]\nmod declared;\n\"ONGI_W\"\n#[cfg(test)]\nmod tests {\n\"ONGI_TEST\"";
        let names: Vec<String> = env_literals(src).into_iter().collect();
        assert_eq!(names, ["ONGI_W", "ONGI_X", "PORT"]);
    }

    #[test]
    fn every_name_config_reads_is_in_the_table_and_every_entry_is_read() {
        let read = names_read_by_config();
        let table: BTreeSet<String> = SETTINGS.iter().map(|s| s.name.to_owned()).collect();
        assert_eq!(table.len(), SETTINGS.len(), "a name twice in SETTINGS");
        let undocumented: Vec<&String> = read.difference(&table).collect();
        assert!(
            undocumented.is_empty(),
            "read by config but not in SETTINGS: {undocumented:?}"
        );
        // Read outside this module: RUST_LOG, by the log filter, which defaults to `info`.
        let telemetry = include_str!("../telemetry.rs");
        assert!(
            telemetry.contains("EnvFilter::try_from_default_env()"),
            "telemetry reads RUST_LOG"
        );
        assert!(
            telemetry.contains("EnvFilter::new(\"info\")"),
            "RUST_LOG defaults to info"
        );
        let unread: Vec<&String> = table.difference(&read).filter(|n| *n != "RUST_LOG").collect();
        assert!(unread.is_empty(), "in SETTINGS but read nowhere: {unread:?}");
    }

    /// Setting a variable to its documented default changes nothing: the table's defaults
    /// are the code's.
    #[test]
    fn every_documented_default_is_the_default() {
        let defaults = format!("{:?}", Settings::defaults());
        for s in SETTINGS.iter().filter(|s| !s.default.is_empty()) {
            let set = Settings::from_lookup(|name| (name == s.name).then(|| s.default.to_owned()))
                .unwrap_or_else(|e| panic!("{}={}: {e}", s.name, s.default));
            assert_eq!(format!("{set:?}"), defaults, "{}={}", s.name, s.default);
        }
    }

    #[test]
    fn the_help_shows_every_setting_with_its_default_in_one_line_each() {
        let help = settings_help();
        for s in SETTINGS {
            assert!(!s.what.is_empty() && !s.what.contains('\n'), "{}", s.name);
            let line = format!("  {}  [default: {}]", s.name, s.shown_default());
            assert!(help.lines().any(|l| l == line), "{line:?} in\n{help}");
        }
        let documented = SETTINGS
            .iter()
            .find(|s| s.name == "ONGI_CACHE_TTL_SECS")
            .map(SettingDoc::shown_default);
        assert_eq!(documented.as_deref(), Some("2592000 (30 days)"));
        let none = SETTINGS
            .iter()
            .find(|s| s.name == "REDIS_URL")
            .map(SettingDoc::shown_default);
        assert_eq!(none.as_deref(), Some("none (in-process cache)"));
    }
}
