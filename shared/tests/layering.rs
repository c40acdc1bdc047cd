//! The module layering of `ongi-shared`, as the table in `src/lib.rs` states it (the one
//! copy: this test reads it from there). Every path in a module's source that names another
//! top-level module must be allowed by the table; every edge the table allows must be used;
//! and each module may use only the modules below it, so dependencies point one way.
//!
//! The sources are read as Rust tokens (`proc-macro2`), so comments and literals never
//! count, and every way of writing a path does: `crate::x`, `crate :: x`, `$crate::x`,
//! `super::super::x` (resolved from the file's module and its inline `mod` blocks),
//! `self::…`, `crate::{x, y::z}` groups, aliases (`use crate as root; root::x`, `use super
//! as up`, `extern crate self as me`, `use crate::x as y; y::…`) and paths inside macro
//! calls. `every_path_form_is_read` shows each form once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `(layer, the layers it may use)`, top first, from the first table of `lib.rs`'s docs:
/// rows `| [`a`], [`b`] | `c`, `d` |` (or `nothing`).
fn table(lib_rs: &str) -> Vec<(String, BTreeSet<String>)> {
    let names = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in lib_rs.lines() {
        let Some(line) = line.strip_prefix("//!") else { continue };
        let line = line.trim();
        if line.starts_with("| layer | may use |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            break;
        }
        let uses: BTreeSet<String> = names(cells[2]).into_iter().collect();
        assert!(
            !uses.is_empty() || cells[2] == "nothing",
            "lib.rs table row `{line}`: name the modules, or say `nothing`"
        );
        for layer in names(cells[1]) {
            rows.push((layer, uses.clone()));
        }
    }
    assert!(!rows.is_empty(), "lib.rs has no `| layer | may use |` table");
    rows
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

/// The module path of a file under `src`: `photo/mod.rs` → `[photo]`,
/// `pipeline/features/compute.rs` → `[pipeline, features, compute]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
}

fn ident(t: Option<&TokenTree>) -> Option<String> {
    match t {
        Some(TokenTree::Ident(i)) => Some(i.to_string()),
        _ => None,
    }
}

/// One leaf of a `use` tree: its path segments as written, and the name it binds.
type UseLeaf = (Vec<String>, Option<String>);

/// Reads one module's tokens: the absolute paths it names, each with the top-level module
/// it lands in.
struct Reader {
    found: BTreeSet<Vec<String>>,
}

impl Reader {
    /// Resolves a path's first segments to an absolute one: `crate`, `$crate` (given as
    /// `crate`), `super`, `self` and aliases; `None` for a path that starts elsewhere (an
    /// external crate, a local item).
    fn resolve(module: &[String], aliases: &HashMap<String, Vec<String>>, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        let mut at: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => module.to_vec(),
            "super" => module[..module.len().checked_sub(1)?].to_vec(),
            name => aliases.get(name)?.clone(),
        };
        let mut rest = rest.iter().peekable();
        while rest.peek().is_some_and(|s| *s == "super") {
            rest.next();
            at.pop()?;
        }
        at.extend(rest.cloned());
        Some(at)
    }

    /// The use trees of a `use` item (tokens between `use` and `;`), as
    /// `(segments, name bound)` leaves.
    fn use_leaves(tokens: &[TokenTree], prefix: &[String], out: &mut Vec<UseLeaf>) {
        let mut segments = prefix.to_vec();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Punct(p) if p.as_char() == '$' => {}
                TokenTree::Ident(id) if id == "as" => {
                    let bound = ident(tokens.get(i + 1));
                    out.push((segments.clone(), bound));
                    return;
                }
                TokenTree::Ident(id) => segments.push(id.to_string()),
                TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                    let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                    for item in inner.split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ',')) {
                        if !item.is_empty() {
                            Self::use_leaves(item, &segments, out);
                        }
                    }
                    return;
                }
                TokenTree::Punct(p) if p.as_char() == '*' => {
                    out.push((segments.clone(), None));
                    return;
                }
                _ => {}
            }
            i += 1;
        }
        let bound = segments.last().cloned().filter(|s| s != "self");
        // `use a::b::{self}` binds `b`.
        if segments.last().is_some_and(|s| s == "self") {
            segments.pop();
            let name = segments.last().cloned();
            out.push((segments, name));
        } else {
            out.push((segments, bound));
        }
    }

    /// The leaves of the `use` item starting at `tokens[at]`, and where it ends (its `;`).
    fn use_item(tokens: &[TokenTree], at: usize) -> (Vec<UseLeaf>, usize) {
        let end = (at..tokens.len())
            .find(|&j| matches!(&tokens[j], TokenTree::Punct(p) if p.as_char() == ';'))
            .unwrap_or(tokens.len());
        let mut leaves = Vec::new();
        Self::use_leaves(&tokens[at + 1..end], &[], &mut leaves);
        (leaves, end)
    }

    /// Aliases declared in this module's tokens (not in inline modules), by name.
    fn aliases(module: &[String], tokens: &[TokenTree], aliases: &mut HashMap<String, Vec<String>>) {
        let mut i = 0;
        while i < tokens.len() {
            let word = ident(tokens.get(i));
            if word.as_deref() == Some("mod") && matches!(tokens.get(i + 2), Some(TokenTree::Group(_))) {
                i += 3;
                continue;
            }
            // `extern crate self as me;`
            if word.as_deref() == Some("extern")
                && ident(tokens.get(i + 1)).as_deref() == Some("crate")
                && ident(tokens.get(i + 2)).as_deref() == Some("self")
                && let Some(name) = ident(tokens.get(i + 4))
            {
                aliases.insert(name, Vec::new());
            }
            if word.as_deref() == Some("use") {
                let (leaves, end) = Self::use_item(tokens, i);
                for (segments, bound) in leaves {
                    if let (Some(path), Some(name)) = (Self::resolve(module, aliases, &segments), bound)
                        && name != "_"
                    {
                        aliases.insert(name, path);
                    }
                }
                i = end;
                continue;
            }
            if let TokenTree::Group(g) = &tokens[i] {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                Self::aliases(module, &inner, aliases);
            }
            i += 1;
        }
    }

    /// Every path in `tokens` that resolves inside the crate; inline `mod name { … }`
    /// blocks are read as the child module they are.
    fn read(&mut self, module: &[String], tokens: &[TokenTree], inherited: &HashMap<String, Vec<String>>) {
        let mut aliases = inherited.clone();
        Self::aliases(module, tokens, &mut aliases);
        self.paths(module, tokens, &aliases);
    }

    fn paths(&mut self, module: &[String], tokens: &[TokenTree], aliases: &HashMap<String, Vec<String>>) {
        let mut i = 0;
        while i < tokens.len() {
            if ident(tokens.get(i)).as_deref() == Some("mod")
                && let (Some(name), Some(TokenTree::Group(body))) = (ident(tokens.get(i + 1)), tokens.get(i + 2))
            {
                let mut child = module.to_vec();
                child.push(name);
                let inner: Vec<TokenTree> = body.stream().into_iter().collect();
                // An inline module sees none of its parent's imports.
                self.read(&child, &inner, &HashMap::new());
                i += 3;
                continue;
            }
            if ident(tokens.get(i)).as_deref() == Some("use") {
                let (leaves, end) = Self::use_item(tokens, i);
                for (segments, _) in leaves {
                    if let Some(path) = Self::resolve(module, aliases, &segments) {
                        self.found.insert(path);
                    }
                }
                i = end;
                continue;
            }
            let starts_path = i == 0 || !is_path_sep(tokens, i.saturating_sub(2));
            if let Some(first) = ident(tokens.get(i))
                && starts_path
                && is_path_sep(tokens, i + 1)
            {
                let mut segments = vec![first];
                let mut j = i + 1;
                while is_path_sep(tokens, j) {
                    match tokens.get(j + 2) {
                        Some(TokenTree::Ident(id)) => segments.push(id.to_string()),
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                            // `crate::{a, b}` outside a `use` (a macro's input).
                            let mut leaves = Vec::new();
                            Self::use_leaves(&tokens[i..j + 3], &[], &mut leaves);
                            for (segments, _) in leaves {
                                if let Some(path) = Self::resolve(module, aliases, &segments) {
                                    self.found.insert(path);
                                }
                            }
                            segments.clear();
                            j += 3;
                            break;
                        }
                        _ => break,
                    }
                    j += 3;
                }
                if let Some(path) = Self::resolve(module, aliases, &segments) {
                    self.found.insert(path);
                }
                i = j.max(i + 1);
                continue;
            }
            if let TokenTree::Group(g) = &tokens[i] {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                self.paths(module, &inner, aliases);
            }
            i += 1;
        }
    }
}

/// The top-level modules that the source of `module` names (its own excluded).
fn used_modules(module: &[String], source: &str, top_level: &BTreeSet<String>) -> Result<BTreeSet<String>, String> {
    // `$crate` reads as `crate`: a macro's own crate is this one.
    let source = source.replace("$crate", "crate");
    let stream = TokenStream::from_str(&source).map_err(|e| format!("cannot read as Rust tokens: {e}"))?;
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut reader = Reader { found: BTreeSet::new() };
    reader.read(module, &tokens, &HashMap::new());
    Ok(reader
        .found
        .into_iter()
        .filter_map(|path| path.first().cloned())
        .filter(|top| top_level.contains(top) && Some(top) != module.first())
        .collect())
}

/// `module → (used module → files that use it)` for every top-level module of `shared/src`.
fn dependencies(top_level: &BTreeSet<String>) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut deps: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).expect("under src").to_path_buf();
        let module = module_of(&rel);
        let Some(top) = module.first().cloned() else {
            continue; // lib.rs: the root declares the modules.
        };
        let source = std::fs::read_to_string(&file).expect("read a source file");
        let used = used_modules(&module, &source, top_level).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        let entry = deps.entry(top).or_default();
        for used in used {
            entry.entry(used).or_default().insert(rel.display().to_string());
        }
    }
    deps
}

fn lib_rs() -> String {
    std::fs::read_to_string(src().join("lib.rs")).expect("read lib.rs")
}

/// The modules `lib.rs` declares (`pub mod x;`).
fn declared(lib_rs: &str) -> BTreeSet<String> {
    lib_rs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';').map(str::to_owned))
        .collect()
}

#[test]
fn every_module_uses_exactly_what_the_table_allows() {
    let lib = lib_rs();
    let table = table(&lib);
    let top_level = declared(&lib);
    let in_table: BTreeSet<String> = table.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(
        in_table, top_level,
        "the table in lib.rs must name every module lib.rs declares"
    );
    let deps = dependencies(&top_level);
    let mut wrong = Vec::new();
    for (module, may) in &table {
        let uses = deps.get(module).cloned().unwrap_or_default();
        for (used, files) in &uses {
            if !may.contains(used) {
                let files: Vec<_> = files.iter().cloned().collect();
                wrong.push(format!("`{module}` uses `{used}` in {}", files.join(", ")));
            }
        }
        for allowed in may {
            if !uses.contains_key(allowed) {
                wrong.push(format!(
                    "`{module}` may use `{allowed}` in lib.rs's table, but nothing does"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the imports and lib.rs's table disagree:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_table_has_no_cycle() {
    // Each module may use only modules listed after it: the table is a topological order.
    let table = table(&lib_rs());
    let order: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
    for (i, (module, uses)) in table.iter().enumerate() {
        for used in uses {
            let at = order.iter().position(|m| m == used);
            assert!(
                at.is_some_and(|at| at > i),
                "`{module}` may use `{used}`, which is not below it in the table"
            );
        }
    }
}

#[test]
fn every_path_form_is_read() {
    let top: BTreeSet<String> = ["domain", "http", "cache"].iter().map(|s| s.to_string()).collect();
    let module = |path: &str| -> Vec<String> { path.split('/').map(str::to_owned).collect() };
    // Each form, alone in a file of `domain`, names `http`: an upward import.
    let forms = [
        ("domain/a", "use crate::http::X;"),
        ("domain/a", "use crate::{cache, http::y};"),
        ("domain/a", "fn f() { crate :: http :: f(); }"),
        ("domain/a/b", "fn f() { super::super::super::http::f(); }"),
        ("domain/a", "fn f() { self::super::super::http::f(); }"),
        ("domain", "fn f() { super::http::f(); }"),
        ("domain/a", "use crate as root; fn f() { root::http::f(); }"),
        ("domain/a", "use super::super as up; fn f() { up::http::f(); }"),
        ("domain/a", "extern crate self as me; fn f() { me::http::f(); }"),
        ("domain/a", "use crate::http as h; fn f() { h::f(); }"),
        ("domain/a", "fn f() { let x = format!(\"{}\", crate::http::f()); }"),
        ("domain/a", "macro_rules! m { () => { $crate::http::f() }; }"),
        ("domain/a", "fn f() -> <crate::http::X as T>::Y { todo!() }"),
        ("domain/a", "mod inner { fn f() { super::super::super::http::f(); } }"),
        ("domain/a", "fn f() { m!(crate::{cache::x, http::y}); }"),
    ];
    for (file, code) in forms {
        let used = used_modules(&module(file), code, &top).unwrap();
        assert!(used.contains("http"), "{code:?} in {file}: read {used:?}");
    }
    // Prose, literals, other crates and the module's own paths name nothing.
    let quiet = [
        "// crate::http::x\n/* crate::http */\n/// crate::http\nfn f() {}",
        "const S: &str = \"crate::http::x\"; const R: &str = r#\"crate::http\"#;",
        "use http::StatusCode; fn f() { ongi_crate::http::x(); ::http::y(); }",
        "use crate::domain::x; fn f() { super::x::y(); self::z(); }",
        "pub(crate) fn f() {} pub(super) fn g() {}",
    ];
    for code in quiet {
        let used = used_modules(&module("domain/a"), code, &top).unwrap();
        assert!(used.is_empty(), "{code:?}: read {used:?}");
    }
}

#[test]
fn the_table_is_read_from_lib_rs() {
    let lib = "//! | layer | may use |\n//! |---|---|\n//! | [`http`] | `cache`, `domain` |\n\
               //! | [`cache`], [`queue`] | `domain` |\n//! | [`domain`] | nothing |\n//!\n";
    let rows = table(lib);
    let names: Vec<&str> = rows.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["http", "cache", "queue", "domain"]);
    assert!(rows[0].1.contains("cache") && rows[0].1.contains("domain"));
    assert!(rows[3].1.is_empty());
}
