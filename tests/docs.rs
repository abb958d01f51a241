//! The docs stay true to the tree: every relative link in `README.md` and `docs/*.md` names a
//! file that exists, every `#anchor` link names a heading of its document, every path in
//! backquotes that starts with `src/`, `tests/`, `benches/` or `docs/` exists, and a function
//! named with its file (`` `src/a.rs::name` ``, or a tour's `` `src/a.rs`, `name` ``) is defined
//! there. And the README's one-minute tour runs, as written, against the real server. (Its two
//! commands are what CI runs: `.ci/run` is `cargo test`, and it installs the release build.)

mod support;

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

/// The functions the docs name in a file: `` `src/a.rs::name` ``, or a path followed by
/// `` , `name` `` (a tour's step: `` `src/http/mod.rs`, `handle` ``). `Type::method` names the
/// method.
fn functions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let spans: Vec<&str> = text.split('`').collect();
    for i in (1..spans.len()).step_by(2) {
        let span = spans[i];
        if !["src/", "tests/", "benches/"].iter().any(|p| span.starts_with(p)) {
            continue;
        }
        if let Some((path, name)) = span.split_once("::") {
            out.push((path.to_string(), name.rsplit("::").next().unwrap_or(name).to_string()));
        } else if spans.get(i + 1) == Some(&", ") && i + 2 < spans.len() {
            let name = spans[i + 2];
            let plain = name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if plain && span.ends_with(".rs") {
                out.push((span.to_string(), name.rsplit("::").next().unwrap_or(name).to_string()));
            }
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
        for (path, function) in functions(&body) {
            let code = std::fs::read_to_string(Path::new(ROOT).join(&path)).unwrap_or_default();
            if !code.contains(&format!("fn {function}("))
                && !code.contains(&format!("fn {function}<"))
            {
                wrong.push(format!("{name}: `{path}` has no function `{function}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "the docs name what is not there:\n{}", wrong.join("\n"));
}

/// Every `docs/...` path the code's own documentation names exists: the code points at the
/// documents that hold the format, the recovery rules and the data directory's protocol.
#[test]
fn documents_named_in_the_code_exist() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join("src"), &mut files);
    let mut wrong = Vec::new();
    let mut named = 0;
    for file in files {
        let code = std::fs::read_to_string(&file).unwrap();
        for path in paths(&code).into_iter().filter(|p| p.starts_with("docs/")) {
            named += 1;
            if !Path::new(ROOT).join(&path).exists() {
                wrong.push(format!("{}: `{path}` does not exist", file.display()));
            }
        }
    }
    assert!(named >= 3, "the code names {named} documents; the checker has lost them");
    assert!(wrong.is_empty(), "the code names documents that are not there:\n{}", wrong.join("\n"));
}

/// Each document of the book says where the rest lives: it links to at least one other.
#[test]
fn every_document_links_to_another() {
    for doc in documents().iter().filter(|d| !d.ends_with("README.md")) {
        let text = std::fs::read_to_string(doc).unwrap();
        let others = links(&prose(&text))
            .into_iter()
            .filter(|l| l.split('#').next().is_some_and(|f| f.ends_with(".md")))
            .count();
        assert!(others > 0, "{} links to no other document", doc.display());
    }
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
    let named =
        functions("1. `src/a.rs`, `handle`: and `src/b.rs::Store::set` but not `src/c.rs`, `x y`");
    assert_eq!(named, [("src/a.rs".into(), "handle".into()), ("src/b.rs".into(), "set".into())]);
}

/// The lines a reader reads for `function` in `code`: its doc comment and attributes, its
/// signature and its body, up to the closing brace (braces in strings, characters and comments
/// are left out of the count). `None` unless the file defines it exactly once.
fn function_lines(code: &str, function: &str) -> Option<usize> {
    let lines: Vec<&str> = code.lines().collect();
    let defines = |line: &str| {
        let line = line.trim_start();
        let line = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .unwrap_or(line);
        let line = line.strip_prefix("const ").unwrap_or(line);
        [format!("fn {function}("), format!("fn {function}<")].iter().any(|s| line.starts_with(s))
    };
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| defines(lines[i])).collect();
    let [start] = starts[..] else { return None };
    let mut first = start;
    while first > 0 && ["///", "#["].iter().any(|p| lines[first - 1].trim_start().starts_with(p)) {
        first -= 1;
    }
    let (mut depth, mut opened) = (0i64, false);
    for (i, line) in lines.iter().enumerate().skip(start) {
        let code = without_literals(line);
        opened |= code.contains('{');
        depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
        if opened && depth == 0 {
            return Some(i - first + 1);
        }
    }
    None
}

/// `line` without its string and character literals and its `//` comment.
fn without_literals(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => drop(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if chars.clone().nth(1) == Some('\'') => drop((chars.next(), chars.next())),
            '\'' if chars.peek() == Some(&'\\') => {
                chars.by_ref().take_while(|&c| c != '\'').for_each(drop);
            }
            '/' if chars.peek() == Some(&'/') => break,
            c => out.push(c),
        }
    }
    out
}

/// The learner's path in `docs/architecture.md`: the table of the section that follows a SET
/// from the socket to the disk, as (file, functions) in order.
fn learners_path(text: &str) -> Vec<(String, Vec<String>)> {
    let section = text.split("## A SET from the socket to the disk").nth(1).unwrap_or("");
    let section = section.split("\n## ").next().unwrap_or("");
    let mut path = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| ") && l.contains("](")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(file) = cells.get(2).and_then(|c| c.split('`').nth(1)) else { continue };
        let functions = cells
            .get(3)
            .map_or(vec![], |c| c.split('`').skip(1).step_by(2).map(str::to_string).collect());
        path.push((file.to_string(), functions));
    }
    path
}

/// The learner's path stays short: at most 8 files and 800 lines of the functions it names,
/// every one of them defined once in its file, and the steps below the table reach the files
/// in the table's order.
#[test]
fn the_learners_path_stays_short() {
    let doc = Path::new(ROOT).join("docs/architecture.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let path = learners_path(&text);
    assert!((2..=8).contains(&path.len()), "the path has {} files, not 2 to 8", path.len());
    let mut total = 0;
    for (file, functions) in &path {
        let code = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
        assert!(!functions.is_empty(), "{file}: the path names no function of it");
        for function in functions {
            let lines = function_lines(&code, function);
            total += lines.unwrap_or_else(|| panic!("{file} does not define `{function}` once"));
        }
    }
    assert!(total <= 800, "the learner's path is {total} lines, more than 800");
    let steps = text.split("## A SET from the socket to the disk").nth(1).unwrap();
    let steps = steps.split("\n1. ").nth(1).expect("the numbered steps");
    let mut at = 0;
    for (file, _) in &path {
        let found = steps[at..].find(&format!("`{file}::"));
        at += found.unwrap_or_else(|| panic!("the steps do not reach `{file}` in order"));
    }
}

/// The path's counter: doc comments, attributes and bodies, with braces in literals ignored.
#[test]
fn the_path_counter_counts_whole_functions() {
    let code = "/// Doc.\n#[inline]\npub fn a(x: u8) -> u8 {\n    let s = \"}}{\";\n    let c = '}';\n    x // }\n}\n\nfn b() {}\nfn a2() {}\n";
    assert_eq!(function_lines(code, "a"), Some(7));
    assert_eq!(function_lines(code, "b"), Some(1));
    assert_eq!(function_lines(code, "c"), None);
    assert_eq!(function_lines("fn d() {}\nfn d() {}\n", "d"), None);
    let doc = "## A SET from the socket to the disk\n\n| step | file | read |\n|---|---|---|\n| 1 | [`src/a.rs`](../src/a.rs) | `x`, `y` |\n\n## Next\n| 2 | [`src/b.rs`](b) | `z` |\n";
    assert_eq!(learners_path(doc), [("src/a.rs".to_string(), vec!["x".into(), "y".into()])]);
}

/// The README's one-minute tour, run as one script against the real server: every `curl` must
/// get a 2xx (each is made to fail on anything else).
#[test]
fn the_readme_tour_runs() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let tour = readme.split("## A one-minute tour").nth(1).expect("the tour's section");
    let block = tour.split("```sh").nth(1).and_then(|b| b.split("```").next()).unwrap();
    let dir = walkv::testutil::TempDir::new("docs-tour");
    let server = support::Server::start(&dir.join("data"));
    std::fs::write(dir.join("photo.jpg"), [0xff, 0xd8, 0xff, 0x00, 0x01, 0x02]).unwrap();
    let script = format!(
        "set -e\ncurl() {{ command curl --fail-with-body \"$@\"; }}\n{}",
        block.replace("localhost:8080", &server.addr)
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(&*dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "the tour failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(dir.join("copy.jpg")).unwrap().starts_with(&[0xff, 0xd8]));
}
