//! The settings table (`ongi_shared::config::SETTINGS`) as users meet it: `ongi serve --help`
//! prints every entry with its default, docs/settings.md names the same settings with the
//! same defaults, and every environment variable a binary reads directly is in the table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ongi_shared::config::{SETTINGS, SettingDoc};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `ongi ARGS` with an empty environment (PATH only): its stdout, after a clean exit.
fn ongi(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ongi"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("the ongi binary runs");
    assert!(
        out.status.success(),
        "ongi {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

#[test]
fn serve_help_lists_every_setting_with_its_default() {
    let help = ongi(&["serve", "--help"]);
    for s in SETTINGS {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}  ", s.name)))
            .unwrap_or_else(|| panic!("{} is not in `ongi serve --help`:\n{help}", s.name));
        let default = if s.default.is_empty() { "none" } else { s.default };
        assert!(line.contains(&format!("[default: {default}")), "{}: {line:?}", s.name);
        assert!(help.contains(s.what), "{}: {:?} is not in the help", s.name, s.what);
    }
    // The short help points at the long one.
    let short = ongi(&["serve", "-h"]);
    assert!(short.contains("ongi serve --help"), "{short}");
}

/// The rows of docs/settings.md's table: the names of the first column (one or several,
/// comma-separated) and the default column.
fn documented() -> Vec<(Vec<String>, String)> {
    let path = root().join("docs/settings.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let names = cells[1]
                .split(',')
                .map(|n| n.trim().trim_matches('`').to_owned())
                .collect();
            (names, cells[2].to_owned())
        })
        .collect()
}

#[test]
fn docs_name_the_same_settings_with_the_same_defaults() {
    let rows = documented();
    let in_docs: BTreeSet<&str> = rows
        .iter()
        .flat_map(|(names, _)| names.iter().map(String::as_str))
        .collect();
    let in_table: BTreeSet<&str> = SETTINGS.iter().map(|s| s.name).collect();
    assert!(in_docs.len() >= 40, "the docs table was not found: {in_docs:?}");
    let undocumented: Vec<&&str> = in_table.difference(&in_docs).collect();
    let unknown: Vec<&&str> = in_docs.difference(&in_table).collect();
    assert!(
        undocumented.is_empty(),
        "in SETTINGS, not in docs/settings.md: {undocumented:?}"
    );
    assert!(unknown.is_empty(), "in docs/settings.md, not in SETTINGS: {unknown:?}");
    for (names, default_cell) in &rows {
        for s in names.iter().filter_map(|n| SETTINGS.iter().find(|s| s.name == n)) {
            check_documented_default(s, default_cell);
        }
    }
}

fn check_documented_default(s: &SettingDoc, cell: &str) {
    if s.default.is_empty() {
        assert!(cell.contains('—'), "{}: no default, the docs say {cell:?}", s.name);
    } else {
        let shown = format!("`{}`", s.default);
        assert!(
            cell.contains(&shown),
            "{}: default {shown}, the docs say {cell:?}",
            s.name
        );
    }
}

/// Every environment variable name read in `dir`'s Rust sources through `env::var("…")`,
/// `env::var_os("…")` or clap's `env = "…"`, with the file that reads it. A file's inline
/// test module (`#[cfg(test)] mod … {`, at its end) is left out: what a test reads is not a
/// setting of the binary (as .ci/check_settings.py does).
fn direct_reads(dir: &Path, found: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            direct_reads(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let whole = std::fs::read_to_string(&path).unwrap();
        let text = inline_test_module(&whole).map_or(whole.as_str(), |at| &whole[..at]);
        for pattern in ["env::var(\"", "env::var_os(\"", "env = \""] {
            for (at, _) in text.match_indices(pattern) {
                let rest = &text[at + pattern.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && rest[name.len()..].starts_with('"') {
                    found.push((name, path.clone()));
                }
            }
        }
    }
}

/// Where a file's inline test module starts: `#[cfg(test)]` followed by `mod name {`.
fn inline_test_module(text: &str) -> Option<usize> {
    text.match_indices("#[cfg(test)]").map(|(at, _)| at).find(|&at| {
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        rest.strip_prefix("mod ").is_some_and(|r| {
            let after_name = r.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
            after_name.trim_start().starts_with('{')
        })
    })
}

#[test]
fn every_variable_a_binary_reads_directly_is_in_the_table() {
    let root = root();
    let mut dirs = vec![root.join("shared/src"), root.join("gpu-job/src")];
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    let mut found = Vec::new();
    for dir in &dirs {
        direct_reads(dir, &mut found);
    }
    // `ongi` reads ONGI_MODEL_DIR (clap), ORT_DYLIB_PATH, REDIS_URL, ONGI_HOST and RUST_LOG.
    assert!(found.len() >= 5, "the scan found too little: {found:?}");
    let missing: Vec<&(String, PathBuf)> = found
        .iter()
        .filter(|(name, _)| !SETTINGS.iter().any(|s| s.name == name))
        .collect();
    assert!(
        missing.is_empty(),
        "read, but not in ongi_shared::config::SETTINGS: {missing:?}"
    );
}
