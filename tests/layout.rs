//! The source tree's folders are the design, and the imports keep to it: no two top-level
//! modules import each other (directly or round a longer loop), no two files of one folder do,
//! and inside `src/wal/` the log itself (`log/`) uses neither the data directory (`dir/`) nor
//! the offline tools (`repair/`), and the data directory does not use the offline tools. (A file
//! and its own folder's `mod.rs` may use each other: that is how a folder shares its types.)
//!
//! Imports are read from the code: every `crate::a::b` and `super::x` path outside comments and
//! outside the tests (`#[cfg(test)]` and `tests.rs` files), resolved to the longest module that
//! exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every module of `src/` by its path (`wal::log::scan`), with its file's code.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let relative = path.strip_prefix(Path::new(ROOT).join("src")).unwrap();
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            out.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut out = BTreeMap::new();
    walk(&Path::new(ROOT).join("src"), &mut out);
    out
}

/// The code a module's users depend on: before `#[cfg(test)]`, without comment lines.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The identifier path that starts at `text` (`a::b::C` of `a::b::C;`), as its parts.
fn path_at(text: &str) -> Vec<&str> {
    let end =
        text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
    text[..end].split("::").filter(|p| !p.is_empty()).collect()
}

/// The longest module that `path` (from the crate's root) names, if any.
fn resolve(path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains_key(m))
}

/// The modules `module` uses, besides itself.
fn imports(module: &str, code: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let here: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if let Some(m) = resolve(&path_at(&code[at + "crate::".len()..]), known) {
            out.insert(m);
        }
    }
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with("super::") {
            continue; // the tail of a longer chain, counted from its start
        }
        let rest = &code[at..];
        let mut ups = 0;
        while rest[ups * "super::".len()..].starts_with("super::") {
            ups += 1;
        }
        let Some(base) = here.len().checked_sub(ups) else { continue };
        let mut path: Vec<&str> = here[..base].to_vec();
        path.extend(path_at(&rest[ups * "super::".len()..]));
        if let Some(m) = resolve(&path, known) {
            out.insert(m);
        } else if base > 0 {
            out.insert(here[..base].join("::"));
        }
    }
    out.remove(module);
    out
}

/// The loops of `graph` (its strongly connected parts of more than one node).
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two nodes are in one loop when each reaches the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(node) = todo.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|n| (n, reach(n))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (node, reached) in &reaches {
        let mut part: Vec<String> = reached
            .iter()
            .filter(|other| reaches.get(other).is_some_and(|r| r.contains(*node)))
            .cloned()
            .collect();
        part.sort();
        if part.len() > 1 && !out.contains(&part) {
            out.push(part);
        }
    }
    out
}

/// The graph of imports between modules at `depth` (1: `wal`, 2: `wal::log`) that share a
/// parent, each module standing for everything under it; a folder's own `mod.rs` is left out.
fn siblings(
    all: &BTreeMap<String, BTreeSet<String>>,
    depth: usize,
) -> BTreeMap<String, BTreeSet<String>> {
    let cut = |m: &str| -> Option<String> {
        let parts: Vec<&str> = m.split("::").collect();
        (parts.len() >= depth && !m.is_empty()).then(|| parts[..depth].join("::"))
    };
    let parent = |m: &str| m.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_string());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in all {
        let Some(a) = cut(from) else { continue };
        for to in tos {
            let Some(b) = cut(to) else { continue };
            if a != b && parent(&a) == parent(&b) {
                graph.entry(a.clone()).or_default().insert(b);
            }
        }
    }
    graph
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .filter(|(m, _)| !m.ends_with("tests") && m.as_str() != "testutil")
        .map(|(m, text)| (m.clone(), imports(m, &code_of(text), &known)))
        .collect()
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = import_graph();
    assert!(graph.len() > 50, "only {} modules found: the reader has lost them", graph.len());
    for depth in 1..=3 {
        let found = loops(&siblings(&graph, depth));
        assert!(found.is_empty(), "modules that import each other (depth {depth}): {found:?}");
    }
}

#[test]
fn the_log_uses_neither_the_data_directory_nor_the_offline_tools() {
    let graph = import_graph();
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        for to in tos {
            let down = |a: &str, b: &str| from.starts_with(a) && to.starts_with(b);
            if down("wal::log", "wal::dir")
                || down("wal::log", "wal::repair")
                || down("wal::dir", "wal::repair")
            {
                wrong.push(format!("{from} uses {to}"));
            }
            if from.starts_with("wal")
                && !to.starts_with("wal")
                && ["store", "server", "http", "intake"].iter().any(|up| to.starts_with(up))
            {
                wrong.push(format!("{from} uses {to}, a module above the log"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

/// The reader itself finds what it must.
#[test]
fn the_import_reader_resolves_paths() {
    let known: BTreeMap<String, String> =
        ["", "a", "a::b", "a::c", "d"].iter().map(|m| (m.to_string(), String::new())).collect();
    let code =
        "use crate::a::b::Thing;\nuse super::c;\nfn f() { crate::d::g(); super::super::d::h(); }";
    let found = imports("a::x", code, &known);
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["a::b", "a::c", "d"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(loops(&graph), [vec!["a".to_string(), "b".into(), "c".into()]]);
    assert_eq!(code_of("use a;\n// use b;\n#[cfg(test)]\nuse c;"), "use a;");
}
