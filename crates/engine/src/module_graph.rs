//! Keeps the engine crate's modules free of cycles: a test reads every source file of this
//! crate, collects which top-level modules each one names through `crate::…` paths, and fails on
//! a cycle. A cycle means two modules cannot be understood, tested or split into crates apart;
//! the usual cure is moving the shared type or helper down into a leaf module (`clock`,
//! `events`, `layout`) or a lower crate (`errors` and `fsutil` are `peerfold-net`'s), or passing
//! it in.
//!
//! Between crates Cargo itself refuses cycles, and `.ci/crate-graph.py` checks which crate may
//! depend on which; this test is for the modules within the one crate that is still large.
//! Modules re-exported from the lower crates (`bep`, `db`, `net`, `errors`, `fsutil`) have no
//! source here and are leaves of this graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules each source file below `src` names, by module.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
            let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
            // lib.rs declares the modules and re-exports the lower crates.
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let used = graph.entry(module.clone()).or_default();
            used.extend(crate_paths(&text).into_iter().filter(|m| *m != module));
        }
    }
    graph
}

/// The first segment of every `crate::` path in `text`, comments left out; `crate::{a, b::c}`
/// names `a` and `b`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or(line);
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // A group: the first segment of each item at its top level.
                let mut depth = 0;
                let mut item_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphabetic() || c == '_') => {
                            found.insert(ident(&group[i..]).to_owned());
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                found.insert(ident(rest).to_owned());
            }
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The graph's strongly connected components of more than one module (its cycles), each
/// sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reaches(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (m, r) in &reach {
        if !r.contains(*m) {
            continue;
        }
        let component: Vec<String> = reach
            .iter()
            .filter(|(o, or)| r.contains(o.as_str()) && or.contains(m.as_str()))
            .map(|(o, _)| (*o).clone())
            .collect();
        if !out.contains(&component) {
            out.push(component);
        }
    }
    out
}

#[test]
fn the_engine_modules_form_no_cycle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.contains_key("engine") && graph["engine"].contains("pull"),
        "the graph was read: {graph:?}"
    );
    let bad = cycles(&graph);
    assert!(bad.is_empty(), "modules that use each other (move what they share into a leaf module): {bad:?}");
}

#[test]
fn paths_and_groups_are_read_and_comments_are_not() {
    let text = "use crate::a::X;\nuse crate::{b, c::{D, E}, self};\n// crate::f\n/// [`crate::g`]\n\
                let x = crate::h::y(); $crate::i; other_crate::j;";
    let found: Vec<String> = crate_paths(text).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "h"]);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")].into_iter().fold(
            BTreeMap::new(),
            |mut g, (from, to)| {
                g.entry(from.to_owned()).or_default().insert(to.to_owned());
                g.entry(to.to_owned()).or_default();
                g
            },
        );
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
}
