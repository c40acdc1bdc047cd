//! `report.html`: the report as pictures, in one self-contained file (inline CSS, one inline
//! script, every picture a `data:` URI; nothing is fetched).
//!
//! A photo can appear in several sections (a category, a duplicate group, the highlights),
//! so each thumbnail is stored once, in a JSON block at the end, and a small script sets
//! the `src` of every `<img data-thumb>` from it: the file stays about one thumbnail per
//! photo in size instead of one per appearance. Face crops appear once and are inline.
//!
//! Every string from the folder (file names, error details) or the models (category
//! names) is escaped with [`esc`]; nothing unescaped from outside reaches the page.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt::Write;

use super::pictures::Pictures;
use super::{MissingSection, Report};

/// Faces shown per person (the representative first); the rest are counted.
pub const FACES_SHOWN: usize = 12;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (legal in Unix file names) would make the page invalid.
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// [`esc`], with a line-break opportunity after each `/`, so a long path in a narrow
/// caption breaks between its folders rather than inside a name.
fn esc_path(s: &str) -> String {
    esc(s).replace('/', "/<wbr>")
}

const CSS: &str = r#"
:root { --fg: #1d2330; --muted: #5d6677; --line: #dde1e8; --card: #fff; --bg: #f3f4f7;
        --accent: #2f6fde; --keep: #1f9d55; --bad: #d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK KR", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 20px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .folder { margin: 0 0 12px; color: #b8c0cf; font-family: ui-monospace, monospace; word-break: break-all; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 0; padding: 0; list-style: none; }
.summary li { background: rgba(255,255,255,.1); border-radius: 6px; padding: 4px 10px; }
.summary a { color: #fff; text-decoration: none; }
.summary b { font-size: 16px; margin-right: 4px; }
main { padding: 8px 32px 32px; max-width: 1400px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; margin: 18px 0; padding: 14px 18px 18px; }
section h2 { margin: 0 0 10px; font-size: 18px; }
section h2 .count { color: var(--muted); font-weight: 400; font-size: 15px; }
section.missing { border-style: dashed; }
p.why, p.empty { color: var(--muted); margin: 4px 0; }
.notice { background: #fff8e1; border: 1px solid #f0d48a; border-radius: 10px; padding: 10px 18px; margin: 18px 0; }
.notice h2 { font-size: 15px; margin: 0 0 6px; }
.notice ul { margin: 0; padding-left: 18px; }
h3 { font-size: 15px; margin: 14px 0 8px; }
h3 .count { color: var(--muted); font-weight: 400; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 172px; position: relative; }
figure img.thumb, figure .no-thumb { display: block; width: 172px; height: 130px; object-fit: contain;
       background: #e9ebf0; border-radius: 6px; border: 2px solid transparent; }
figure .no-thumb { display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 12px; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; overflow-wrap: break-word; }
figcaption .name { color: var(--fg); display: block; }
.badge { position: absolute; top: 6px; left: 6px; background: var(--accent); color: #fff; font-size: 11px;
         font-weight: 600; padding: 1px 7px; border-radius: 10px; text-transform: uppercase; letter-spacing: .03em; }
figure.keeper img.thumb { border-color: var(--keep); }
figure.keeper .badge { background: var(--keep); }
.dup-group, .person, .highlight-category, .category { border-top: 1px solid var(--line); padding-top: 10px; margin-top: 10px; }
.dup-group:first-of-type, .person:first-of-type, .highlight-category:first-of-type, .category:first-of-type { border-top: 0; margin-top: 0; }
.group-title { font-weight: 600; margin-bottom: 6px; }
.reasons { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 3px; }
.reason { background: #fde8e8; color: var(--bad); border-radius: 4px; padding: 0 6px; font-size: 12px; font-weight: 600; }
figure.low img.thumb { border-color: var(--bad); }
.faces { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-end; }
.face-figure { width: auto; max-width: 130px; }
.face-wrap { position: relative; display: inline-block; }
img.face { display: block; width: 80px; height: 80px; object-fit: cover; border-radius: 50%; border: 2px solid var(--line); background: #e9ebf0; }
img.face.representative { width: 120px; height: 120px; border: 3px solid var(--accent); }
.face-wrap .badge { top: auto; bottom: -6px; left: 50%; transform: translateX(-50%); white-space: nowrap; }
.face-figure figcaption { text-align: center; margin-top: 8px; overflow-wrap: break-word; }
.more { color: var(--muted); align-self: center; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.file { font-family: ui-monospace, monospace; word-break: break-all; }
td.reason-code { color: var(--bad); font-weight: 600; white-space: nowrap; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
"#;

/// Sets each `<img data-thumb>`'s `src` from the thumbnail table.
const SCRIPT: &str = r#"(function () {
  var table = document.getElementById("ongi-thumbnails");
  if (!table) { return; }
  var thumbs = JSON.parse(table.textContent);
  var imgs = document.querySelectorAll("img[data-thumb]");
  for (var i = 0; i < imgs.length; i++) {
    var src = thumbs[imgs[i].getAttribute("data-thumb")];
    if (src) { imgs[i].src = src; }
  }
})();"#;

struct Page<'a> {
    html: String,
    pictures: &'a Pictures,
    /// Photo name → thumbnail id, in order of first appearance.
    ids: HashMap<&'a str, usize>,
    table: BTreeMap<usize, &'a str>,
}

impl<'a> Page<'a> {
    fn push(&mut self, s: &str) {
        self.html.push_str(s);
    }

    /// One photo: its thumbnail (or a placeholder), an optional badge, its name, and
    /// `extra`, which is already HTML.
    fn photo(&mut self, image: &'a str, class: &str, badge: Option<&str>, extra: &str) {
        let name = esc(image);
        let _ = write!(
            self.html,
            r#"<figure class="photo{}" data-image="{name}">"#,
            class_suffix(class)
        );
        match self.pictures.thumbnails.get(image) {
            Some(uri) => {
                let next = self.ids.len();
                let id = *self.ids.entry(image).or_insert(next);
                self.table.insert(id, uri.as_str());
                let _ = write!(
                    self.html,
                    r#"<img class="thumb" data-thumb="{id}" alt="{name}" title="{name}">"#
                );
            }
            None => self.push(r#"<div class="no-thumb">no preview</div>"#),
        }
        if let Some(badge) = badge {
            let _ = write!(self.html, r#"<span class="badge">{}</span>"#, esc(badge));
        }
        let _ = write!(
            self.html,
            r#"<figcaption><span class="name">{}</span>{extra}</figcaption></figure>"#,
            esc_path(image)
        );
    }

    fn section_start(&mut self, id: &str, title: &str, count: Option<usize>) {
        let count = count.map_or(String::new(), |n| format!(r#" <span class="count">{n}</span>"#));
        let _ = write!(self.html, r#"<section id="{id}"><h2>{title}{count}</h2>"#);
    }

    fn missing(&mut self, id: &str, title: &str, why: &str) {
        let _ = write!(
            self.html,
            r#"<section id="{id}" class="missing"><h2>{title}</h2><p class="why">Not computed: {}</p></section>"#,
            esc(why)
        );
    }
}

fn class_suffix(class: &str) -> String {
    if class.is_empty() {
        String::new()
    } else {
        format!(" {class}")
    }
}

/// The whole page.
pub fn render(report: &Report, pictures: &Pictures) -> String {
    let mut page = Page {
        html: String::with_capacity(64 * 1024 + pictures.thumbnails.len() * 40 * 1024),
        pictures,
        ids: HashMap::new(),
        table: BTreeMap::new(),
    };
    let folder = esc(&report.folder);
    let _ = write!(
        page.html,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ongi report: {folder}</title><style>{CSS}</style></head><body>
<header><h1>Ongi report</h1><p class="folder">{folder}</p><ul class="summary">"#
    );
    let s = &report.summary;
    for (n, what, anchor) in [
        (s.photos, "photos", "categories"),
        (s.duplicate_groups, "duplicate groups", "duplicates"),
        (s.low_quality, "low quality", "low-quality"),
        (s.people, "people", "people"),
        (s.faces, "faces", "people"),
        (s.unreadable, "unreadable", "unreadable"),
    ] {
        let _ = write!(page.html, r##"<li><a href="#{anchor}"><b>{n}</b>{what}</a></li>"##);
    }
    page.push("</ul></header><main>");
    notice(&mut page, &report.missing);
    // What asks for action first; the categories, which show every photo, after them.
    duplicates(&mut page, report);
    low_quality(&mut page, report);
    highlights(&mut page, report);
    people(&mut page, report);
    categories(&mut page, report);
    unreadable(&mut page, report);
    let _ = write!(
        page.html,
        r#"</main><footer>Written by <code>ongi analyze</code> in {:.1} s. CLIP model: {}{}.</footer>"#,
        report.elapsed_seconds,
        esc(&report.models.clip),
        report
            .models
            .faces
            .as_deref()
            .map_or(String::new(), |f| format!("; face models: {}", esc(f))),
    );
    // `<` cannot occur in these values (base64 and digits), but a `</script` must never be
    // able to end the block early, so it is escaped the JSON way regardless.
    let table = serde_json::to_string(&page.table)
        .unwrap_or_else(|_| "{}".to_owned())
        .replace('<', "\\u003c");
    let _ = write!(
        page.html,
        r#"<script type="application/json" id="ongi-thumbnails">{table}</script><script>{SCRIPT}</script></body></html>"#
    );
    page.html
}

fn notice(page: &mut Page<'_>, missing: &[MissingSection]) {
    if missing.is_empty() {
        return;
    }
    page.push(r#"<div class="notice" id="missing"><h2>Sections not computed</h2><ul>"#);
    for m in missing {
        let _ = write!(page.html, "<li><b>{}</b>: {}</li>", esc(m.section), esc(&m.why));
    }
    page.push("</ul></div>");
}

fn categories<'a>(page: &mut Page<'a>, report: &'a Report) {
    let Some(groups) = &report.categories else {
        return page.missing(
            "categories",
            "Categories",
            report.missing_why("categories").unwrap_or(""),
        );
    };
    page.section_start("categories", "Categories", Some(groups.len()));
    if groups.is_empty() {
        page.push(r#"<p class="empty">No photos to categorise.</p>"#);
    }
    for g in groups {
        let _ = write!(
            page.html,
            r#"<div class="category" data-count="{n}"><h3>{} <span class="count">{n} photo{}</span></h3><div class="grid">"#,
            esc(&g.category),
            plural(g.images.len()),
            n = g.images.len(),
        );
        for image in &g.images {
            page.photo(image, "", None, "");
        }
        page.push("</div></div>");
    }
    page.push("</section>");
}

fn duplicates<'a>(page: &mut Page<'a>, report: &'a Report) {
    page.section_start("duplicates", "Duplicates", Some(report.duplicates.len()));
    if report.duplicates.is_empty() {
        page.push(r#"<p class="empty">No duplicates found.</p>"#);
    }
    for (n, g) in report.duplicates.iter().enumerate() {
        let size = g.duplicates.len() + 1;
        let _ = write!(
            page.html,
            r#"<div class="dup-group" data-size="{size}"><div class="group-title">Group {} · {size} photos</div><div class="grid">"#,
            n + 1
        );
        page.photo(
            &g.keeper,
            "keeper",
            Some("keeper"),
            r#"<span class="tier">the best of the group</span>"#,
        );
        for m in &g.duplicates {
            let tier = serde_json::to_value(m.tier)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let cosine = m.cosine.map_or(String::new(), |c| format!(" · cos {c:.2}"));
            let extra = format!(
                r#"<span class="tier">{} · {} bit{} apart{}</span>"#,
                esc(&tier),
                m.hamming,
                plural(m.hamming as usize),
                cosine
            );
            page.photo(&m.image, "duplicate", None, &extra);
        }
        page.push("</div></div>");
    }
    page.push("</section>");
}

fn low_quality<'a>(page: &mut Page<'a>, report: &'a Report) {
    page.section_start("low-quality", "Low quality", Some(report.low_quality.len()));
    if report.low_quality.is_empty() {
        page.push(r#"<p class="empty">Every photo passed the blur and exposure tests.</p>"#);
    }
    page.push(r#"<div class="grid">"#);
    for d in &report.low_quality {
        let mut extra = String::from(r#"<span class="reasons">"#);
        for r in &d.reasons {
            let _ = write!(extra, r#"<span class="reason">{}</span>"#, esc(r));
        }
        let m = &d.metrics;
        let _ = write!(
            extra,
            r#"</span><span class="metrics">blur {:.0} · dark {:.0}% · bright {:.0}%</span>"#,
            m.blur_variance,
            m.shadows_clipped * 100.0,
            m.highlights_clipped * 100.0
        );
        page.photo(&d.image, "low", None, &extra);
    }
    page.push("</div></section>");
}

fn highlights<'a>(page: &mut Page<'a>, report: &'a Report) {
    let Some(categories) = &report.highlights else {
        return page.missing(
            "highlights",
            "Highlights",
            report.missing_why("highlights").unwrap_or(""),
        );
    };
    page.section_start("highlights", "Highlights", None);
    page.push(r#"<p class="why">The best-scored photos of each category, leaving out low-quality photos and duplicates other than their keeper.</p>"#);
    for c in categories {
        let best = c.highlights.as_deref().unwrap_or_default();
        let _ = write!(
            page.html,
            r#"<div class="highlight-category" data-count="{}"><h3>{}</h3><div class="grid">"#,
            best.len(),
            esc(&c.category)
        );
        if best.is_empty() {
            page.push(r#"<p class="empty">No photo of this category qualifies.</p>"#);
        }
        for (rank, image) in best.iter().enumerate() {
            let score = c.images.iter().find(|i| &i.image == image).map(|i| i.score);
            let extra = score.map_or(String::new(), |s| format!(r#"<span class="score">score {s:.2}</span>"#));
            page.photo(image, "highlight", Some(&format!("#{}", rank + 1)), &extra);
        }
        page.push("</div></div>");
    }
    page.push("</section>");
}

fn people<'a>(page: &mut Page<'a>, report: &'a Report) {
    let Some(people) = &report.people else {
        return page.missing("people", "People", report.missing_why("people").unwrap_or(""));
    };
    page.section_start("people", "People", Some(people.clusters.len()));
    let clustered: usize = people
        .clusters
        .iter()
        .map(|p| p.faces.as_ref().map_or(0, Vec::len))
        .sum();
    let _ = write!(
        page.html,
        r#"<p class="why">{} face{} found; {clustered} in the people below (a person is someone seen in at least two photos).</p>"#,
        people.faces_found,
        plural(people.faces_found)
    );
    for (n, p) in people.clusters.iter().enumerate() {
        let faces = p.faces.as_deref().unwrap_or_default();
        let rep = &p.representative_face;
        let _ = write!(
            page.html,
            r#"<div class="person" data-faces="{}" data-photos="{}"><div class="group-title">Person {} · in {} photo{}</div><div class="faces">"#,
            faces.len(),
            p.images.len(),
            n + 1,
            p.images.len(),
            plural(p.images.len())
        );
        face(page, &rep.image, rep.bbox, true);
        let others = faces.iter().filter(|f| !(f.image == rep.image && f.bbox == rep.bbox));
        let mut shown = 1;
        for f in others {
            if shown == FACES_SHOWN {
                break;
            }
            face(page, &f.image, f.bbox, false);
            shown += 1;
        }
        if faces.len() > shown {
            let _ = write!(page.html, r#"<span class="more">+{} more</span>"#, faces.len() - shown);
        }
        page.push("</div></div>");
    }
    if !people.failed.is_empty() {
        let _ = write!(
            page.html,
            r#"<p class="why">Faces could not be looked for in {} photo{}: {}</p>"#,
            people.failed.len(),
            plural(people.failed.len()),
            esc(&people
                .failed
                .iter()
                .map(|f| format!("{} ({})", f.image, f.reason))
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    page.push("</section>");
}

fn face(page: &mut Page<'_>, image: &str, bbox: [i32; 4], representative: bool) {
    let class = if representative { " representative" } else { "" };
    let name = esc(image);
    let _ = write!(
        page.html,
        r#"<figure class="face-figure{class}"><div class="face-wrap">"#
    );
    match page.pictures.faces.get(&(image.to_owned(), bbox)) {
        Some(uri) => {
            let _ = write!(
                page.html,
                r#"<img class="face{class}" src="{uri}" alt="a face in {name}" title="{name} [{}, {}, {}, {}]">"#,
                bbox[0], bbox[1], bbox[2], bbox[3]
            );
        }
        None => page.push(r#"<div class="no-thumb">no preview</div>"#),
    }
    if representative {
        page.push(r#"<span class="badge">representative</span>"#);
    }
    let _ = write!(page.html, "</div><figcaption>{}</figcaption></figure>", esc_path(image));
}

fn unreadable(page: &mut Page<'_>, report: &Report) {
    page.section_start("unreadable", "Unreadable files", Some(report.unreadable.len()));
    if report.unreadable.is_empty() {
        page.push(r#"<p class="empty">Every photo could be read.</p>"#);
    } else {
        page.push("<table><thead><tr><th>file</th><th>reason</th><th>detail</th></tr></thead><tbody>");
        for u in &report.unreadable {
            let _ = write!(
                page.html,
                r#"<tr class="unreadable-file"><td class="file">{}</td><td class="reason-code">{}</td><td>{}</td></tr>"#,
                esc(&u.image),
                esc(u.reason.as_str()),
                esc(u.detail.as_deref().unwrap_or(""))
            );
        }
        page.push("</tbody></table>");
    }
    if !report.skipped.is_empty() {
        const LISTED: usize = 20;
        let mut names: Vec<String> = report.skipped.iter().take(LISTED).map(|s| esc(s)).collect();
        if report.skipped.len() > LISTED {
            names.push(format!("and {} more", report.skipped.len() - LISTED));
        }
        let _ = write!(
            page.html,
            r#"<p class="why">{} file{} skipped (not photos by their name): {}</p>"#,
            report.skipped.len(),
            plural(report.skipped.len()),
            names.join(", ")
        );
    }
    page.push("</section>");
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc(r#"<img src=x onerror="a('b')">&.jpg"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;.jpg"
        );
        assert_eq!(esc("a\u{7}b\nc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(esc("사진 1.jpg"), "사진 1.jpg");
        assert_eq!(esc_path("trip/<a>.jpg"), "trip/<wbr>&lt;a&gt;.jpg");
    }
}
