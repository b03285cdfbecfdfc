//! The architecture map (`src/lib.rs`) promises layers: leaf modules import nothing of ours,
//! and no two modules import each other, directly or round a ring. This test reads `src/` and
//! keeps that promise checked.
//!
//! Every `.rs` file is a module (`a/mod.rs` is `a`). An import is any `use` path or inline path
//! starting with `crate::`, `super::` or `self::`, resolved to the deepest module it names. An
//! import from `a::x` to `a::y::z` is an edge between the siblings `a::x` and `a::y`; a module
//! using its parent's items, or a parent naming its children (how `mod.rs` registries work),
//! is not a sibling edge. Test code (`#[cfg(test)] mod tests` and `tests.rs`) and comments are
//! left out: a doc link is not an import. Every set of siblings must form a graph without
//! cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

type ModPath = Vec<String>;

/// Every module of `src/` with its file.
fn modules(root: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("below src/")
                .with_extension("");
            let mut parts: ModPath = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts == ["lib"] || parts == ["main"] || parts.last().is_some_and(|p| p == "tests") {
                continue;
            }
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file without its unit tests, comments and string contents.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    let strings = Regex::new(r#""(?:\\.|[^"\\])*""#).expect("valid regex");
    let comments = Regex::new(r"//[^\n]*").expect("valid regex");
    let text = strings.replace_all(text, "\"\"");
    comments.replace_all(&text, "").into_owned()
}

/// The paths a `use` tree names: `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(prefix: &[String], tree: &str) -> Vec<ModPath> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut base = prefix.to_vec();
        base.extend(
            tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
        let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let (mut depth, mut part, mut out) = (0, String::new(), Vec::new());
        for c in inner.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(expand(&base, &std::mem::take(&mut part)));
                    continue;
                }
                _ => {}
            }
            part.push(c);
        }
        if !part.trim().is_empty() {
            out.extend(expand(&base, &part));
        }
        return out;
    }
    let tree = tree.split(" as ").next().unwrap_or(tree);
    let mut path = prefix.to_vec();
    path.extend(
        tree.split("::")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from),
    );
    vec![path]
}

/// The module a path starting with `crate`, `super` or `self`, written in `from`, names.
fn resolve(mods: &BTreeMap<ModPath, PathBuf>, from: &[String], path: &[String]) -> Option<ModPath> {
    let (mut base, rest): (ModPath, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "super" | "self" => {
            let mut base = from.to_vec();
            let mut rest = path;
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    for part in rest {
        base.push(part.clone());
        if !mods.contains_key(&base) {
            base.pop();
            break;
        }
    }
    Some(base)
}

/// Sibling edges: (from, to) → the paths that make them.
fn sibling_edges(root: &Path) -> BTreeMap<(ModPath, ModPath), BTreeSet<String>> {
    let mods = modules(root);
    let uses = Regex::new(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);").expect("valid regex");
    let inline = Regex::new(r"\b(?:crate|super|self)(?:::\w+)+").expect("valid regex");
    let mut edges: BTreeMap<(ModPath, ModPath), BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &mods {
        let text = code(&std::fs::read_to_string(file).expect("a readable source file"));
        let mut paths: Vec<ModPath> = Vec::new();
        for c in uses.captures_iter(&text) {
            paths.extend(expand(&[], &c[1]));
        }
        for m in inline.find_iter(&text) {
            paths.push(m.as_str().split("::").map(String::from).collect());
        }
        for path in paths {
            let Some(target) = resolve(&mods, module, &path) else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // parent and child
            }
            edges
                .entry((module[..=common].to_vec(), target[..=common].to_vec()))
                .or_default()
                .insert(path.join("::"));
        }
    }
    edges
}

/// One cycle per strongly connected component with more than one module, as a ring of names.
fn cycles(edges: &BTreeMap<(ModPath, ModPath), BTreeSet<String>>) -> Vec<Vec<ModPath>> {
    let mut next: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let mut found = Vec::new();
    let mut done: BTreeSet<&ModPath> = BTreeSet::new();
    for start in next.keys() {
        // Depth-first search for a path from `start` back to itself.
        let mut stack = vec![(*start, vec![*start])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for n in next.get(node).into_iter().flatten() {
                if *n == *start {
                    let ring: Vec<ModPath> = path.iter().map(|p| (*p).clone()).collect();
                    if !ring.iter().any(|m| done.contains(m)) {
                        found.push(ring);
                    }
                    stack.clear();
                    break;
                }
                if seen.insert(*n) {
                    let mut p = path.clone();
                    p.push(*n);
                    stack.push((*n, p));
                }
            }
        }
        done.insert(*start);
    }
    found
}

#[test]
fn no_module_imports_itself_round_a_ring() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = sibling_edges(&root);
    assert!(
        edges.len() > 50,
        "the scan found only {} edges: it is not reading src/",
        edges.len()
    );
    let rings = cycles(&edges);
    let mut report = String::new();
    for ring in &rings {
        let names: Vec<String> = ring.iter().map(|m| m.join("::")).collect();
        report.push_str(&format!("cycle: {} → {}\n", names.join(" → "), names[0]));
        for (i, from) in ring.iter().enumerate() {
            let to = &ring[(i + 1) % ring.len()];
            let via = &edges[&(from.clone(), to.clone())];
            report.push_str(&format!(
                "  {} → {} via {}\n",
                from.join("::"),
                to.join("::"),
                via.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    assert!(rings.is_empty(), "import cycles between modules:\n{report}");
}

#[test]
fn leaf_modules_import_nothing_of_ours() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = sibling_edges(&root);
    for leaf in [
        "backoff",
        "clock",
        "duration",
        "http_body",
        "section",
        "secret",
        "text",
    ] {
        let out: Vec<String> = edges
            .keys()
            .filter(|(a, _)| a.len() == 1 && a[0] == leaf)
            .map(|(_, b)| b.join("::"))
            .collect();
        assert!(out.is_empty(), "leaf module `{leaf}` imports {out:?}");
    }
}

#[test]
fn the_scan_sees_a_ring_when_there_is_one() {
    // The checker itself, on a made-up tree: a → b → c → a through every import form.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path();
    std::fs::create_dir_all(src.join("p")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod p;").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::p::{b::Thing, c};\n").expect("write");
    std::fs::write(src.join("p/mod.rs"), "pub mod b; pub mod c;").expect("write");
    std::fs::write(src.join("p/b.rs"), "fn f() { super::c::g() }\n").expect("write");
    std::fs::write(
        src.join("p/c.rs"),
        "// use crate::a; a comment is not an import\nfn g() -> self::super::b::Thing {}\n",
    )
    .expect("write");
    let edges = sibling_edges(src);
    let pairs: BTreeSet<(String, String)> = edges
        .keys()
        .map(|(a, b)| (a.join("::"), b.join("::")))
        .collect();
    let expected: BTreeSet<(String, String)> = [("a", "p"), ("p::b", "p::c"), ("p::c", "p::b")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(pairs, expected);
    let rings = cycles(&edges);
    assert_eq!(rings.len(), 1, "{rings:?}");
    assert_eq!(rings[0].len(), 2);
}
