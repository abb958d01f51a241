//! The docs stay true to the tree: every relative link in `README.md` and `docs/*.md` names a
//! file that exists, every `#anchor` link names a heading of its document, and every path in
//! backquotes that starts with `src/`, `tests/`, `benches/` or `docs/` exists (a
//! `path::function` or `path:line` after it is left out of the check, not the path).

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Markdown files the check covers.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![Path::new(ROOT).join("README.md")];
    if let Ok(dir) = std::fs::read_dir(Path::new(ROOT).join("docs")) {
        let mut md: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        md.sort();
        docs.extend(md);
    }
    docs
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, only letters, digits, `-` and `_`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The text outside fenced code blocks (links and anchors there are not links).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The anchors of the headings of `prose`.
fn headings(prose: &str) -> Vec<String> {
    prose.lines().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

/// Every `](target)` of `text`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Every backquoted span of `text` that starts with one of the tree's folders, cut to its path.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, span) in text.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let starts = ["src/", "tests/", "benches/", "docs/"].iter().any(|p| span.starts_with(p));
        if !starts || span.contains(' ') || span.contains('*') {
            continue;
        }
        let path = span.split("::").next().unwrap_or(span);
        let path = path.split(':').next().unwrap_or(path);
        out.push(path.to_string());
    }
    out
}

#[test]
fn links_anchors_and_paths_in_the_docs_exist() {
    let mut wrong = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let body = prose(&text);
        let name = doc.strip_prefix(ROOT).unwrap_or(&doc).display().to_string();
        let anchors = headings(&body);
        for link in links(&body) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            if file.is_empty() {
                if !anchors.contains(&anchor.to_string()) {
                    wrong.push(format!("{name}: no heading for the link #{anchor}"));
                }
                continue;
            }
            let target = doc.parent().unwrap().join(file);
            if !target.exists() {
                wrong.push(format!("{name}: the link {link} names no file"));
            } else if !anchor.is_empty() && file.ends_with(".md") {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !headings(&prose(&text)).contains(&anchor.to_string()) {
                    wrong.push(format!("{name}: {file} has no heading for the link #{anchor}"));
                }
            }
        }
        for path in paths(&body) {
            if !Path::new(ROOT).join(&path).exists() {
                wrong.push(format!("{name}: `{path}` does not exist"));
            }
        }
    }
    assert!(wrong.is_empty(), "the docs name what is not there:\n{}", wrong.join("\n"));
}

/// The checker itself: it finds what it must.
#[test]
fn the_checker_finds_links_anchors_and_paths() {
    assert_eq!(
        slug(" Slow and hostile clients: every timeout and limit"),
        "slow-and-hostile-clients-every-timeout-and-limit"
    );
    assert_eq!(links("see [a](#b) and [c](docs/x.md#y)."), ["#b", "docs/x.md#y"]);
    assert_eq!(
        paths("`src/wal/mod.rs` `tests/ttl.rs::fn_name` `src/a.rs:12` `cargo test` `src/*.rs`"),
        ["src/wal/mod.rs", "tests/ttl.rs", "src/a.rs"]
    );
    assert_eq!(prose("a\n```\n[x](nowhere)\n```\nb\n"), "a\nb\n");
}
