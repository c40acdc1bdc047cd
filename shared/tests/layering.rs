//! The module layering of `ongi-shared`, as `src/lib.rs` states it: every `crate::<module>`
//! path in a module's source must name a module it is allowed to depend on, so the
//! dependencies point one way and no two modules import each other.
//!
//! The check reads the source as text: `use crate::x…`, `crate::{x…, y…}` groups and inline
//! `crate::x::…` paths, outside comments. A new top-level module must be added to
//! [`ALLOWED`] (and to the table in `lib.rs`), or this test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `shared/src` and the modules it may use, top layer first.
const ALLOWED: &[(&str, &[&str])] = &[
    // The HTTP application: routes map requests to the layers below.
    (
        "http",
        &[
            "services",
            "album",
            "pipeline",
            "analysis",
            "model",
            "image",
            "storage",
            "cache",
            "queue",
            "events",
            "style",
            "modules",
            "config",
            "telemetry",
            "domain",
        ],
    ),
    // The process's clients and services, built from the settings.
    (
        "services",
        &[
            "pipeline", "analysis", "model", "storage", "cache", "queue", "events", "style", "modules", "config",
            "domain",
        ],
    ),
    // One album's analyses over its photos' features.
    ("album", &["pipeline", "analysis", "model", "domain", "config"]),
    // Per-photo features and faces, cache or compute; per-photo steps; reprocessing.
    (
        "pipeline",
        &[
            "analysis", "model", "image", "storage", "cache", "events", "modules", "config", "domain",
        ],
    ),
    // Style presets, templates and the Gemini prompt writer; jobs go on the queue.
    ("style", &["image", "queue", "config", "domain"]),
    // Pure analyses: no I/O, so none of storage, cache, queue, events.
    ("analysis", &["model", "image", "config", "domain"]),
    ("model", &["image", "config", "domain"]),
    ("image", &["config", "domain"]),
    ("storage", &["config", "domain"]),
    ("cache", &["config", "domain"]),
    ("queue", &["config", "domain"]),
    ("events", &["config", "domain"]),
    ("telemetry", &["config"]),
    ("modules", &[]),
    ("config", &["domain"]),
    ("domain", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc comments included) and string literals' contents,
/// so prose that mentions `crate::x` does not count.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let mut in_string = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_string && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_string = !in_string;
            }
            if !in_string {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// The top-level modules named by `crate::` paths in `code`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        // `$crate::` is a macro's own crate, and `ongi_crate::` is another name.
        let before = rest[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            rest = after;
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a::x, b}`: the first segment of each top-level item of the group.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphabetic() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        rest = after;
    }
    found
}

/// `module → (used module → files that use it)` for every top-level module of `shared/src`.
fn dependencies() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut deps: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        let module = rel.split('/').next().unwrap_or("").trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("read a source file");
        for used in crate_modules(&code_only(&source)) {
            if used != module {
                deps.entry(module.clone())
                    .or_default()
                    .entry(used)
                    .or_default()
                    .insert(rel.clone());
            }
        }
        deps.entry(module).or_default();
    }
    deps
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, uses)| (*m, uses.iter().copied().collect()))
        .collect();
    let mut wrong = Vec::new();
    for (module, uses) in dependencies() {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "`{module}` is not in the layering table (tests/layering.rs, lib.rs)"
            ));
            continue;
        };
        for (used, files) in uses {
            if !may.contains(used.as_str()) {
                let files: Vec<_> = files.into_iter().collect();
                wrong.push(format!("`{module}` uses `{used}` in {}", files.join(", ")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn the_table_has_no_cycle() {
    // Each module may use only modules listed after it: the table is a topological order.
    let order: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    for (i, (module, uses)) in ALLOWED.iter().enumerate() {
        for used in *uses {
            let at = order.iter().position(|m| m == used);
            assert!(
                at.is_some_and(|at| at > i),
                "`{module}` may use `{used}`, which is not below it in the table"
            );
        }
    }
}

#[test]
fn the_reader_finds_grouped_and_inline_paths_and_skips_prose() {
    let code = code_only(
        "use crate::cache::Cache;\nuse crate::{image::decode, model::{Models, clip}};\n\
         let x = crate::storage::open();\n// crate::http is prose\nlet s = \"crate::queue\";\n\
         $crate::telemetry::x; ongi_crate::events::y;",
    );
    let found = crate_modules(&code);
    let expected: BTreeSet<String> = ["cache", "image", "model", "storage"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_wrong_import_is_caught() {
    // The check itself can fail: `analysis` using `cache` is against the table.
    let found = crate_modules(&code_only("use crate::cache::Cache;"));
    let analysis = ALLOWED
        .iter()
        .find(|(m, _)| *m == "analysis")
        .map(|(_, u)| *u)
        .unwrap_or(&[]);
    assert!(found.iter().any(|m| !analysis.contains(&m.as_str())));
}
