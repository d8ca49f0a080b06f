//! The module graph: no import cycle between the crate's top-level modules, and the layering
//! rules of the lower modules (`schema` imports nothing of ours; `stats`, `data`, `model`,
//! `compare`, `export` and `report` only what the table below allows) and of the scenario
//! kinds (`scenario` drives `measure` and hands its part of the check to `compare`, but never
//! sees the suite, the plan or the worker).
//!
//! The graph is read from the source: every `src/**/*.rs` except test code (items under
//! `#[cfg(test)]`, and files declared as `#[cfg(test)] mod x;`), with an edge `a -> b` for each
//! `crate::b` path in a file of `a` (including `use crate::{b, ...}` groups) and each `super::`
//! path that climbs out of `a` into `b`. Comments and string literals are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which modules each layered module may import (an import outside its set fails the test).
const ALLOWED: &[(&str, &[&str])] = &[
    ("schema", &[]),
    ("stats", &["schema"]),
    ("data", &["spec"]),
    ("llm", &["schema", "stats", "measure", "data"]),
    ("onnx", &[]),
    (
        "model",
        &["schema", "spec", "data", "target", "llm", "onnx"],
    ),
    ("compare", &["schema", "stats"]),
    ("export", &["schema", "stats", "compare"]),
    ("report", &["schema", "stats"]),
    (
        "scenario",
        &[
            "schema", "stats", "spec", "measure", "model", "compare", "llm",
        ],
    ),
];

/// `from -> to`, with one file that makes each edge (for the failure message).
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = crate_graph();
    assert!(graph.len() > 10, "too few modules found: {graph:?}");
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles
            .iter()
            .map(|c| describe(&graph, c))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn layered_modules_import_only_what_they_may() {
    let graph = crate_graph();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        assert!(
            src.join(format!("{module}.rs")).exists() || src.join(module).is_dir(),
            "no module `{module}` in src/: update the table"
        );
        for (dep, file) in graph.get(*module).into_iter().flatten() {
            if !allowed.contains(&dep.as_str()) {
                wrong.push(format!(
                    "{module} -> {dep} ({}); {module} may import only {allowed:?}",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The graph of this crate's `src/`.
fn crate_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("a readable source file");
            (f, strip_comments_and_strings(&text))
        })
        .collect();
    let test_only: Vec<PathBuf> = sources
        .iter()
        .flat_map(|(f, text)| test_module_files(f, text))
        .collect();
    let mut graph = Graph::new();
    for (file, text) in &sources {
        let rel = file.strip_prefix(&src).expect("under src");
        if rel == Path::new("lib.rs")
            || rel == Path::new("main.rs")
            || test_only.iter().any(|t| file.starts_with(t))
        {
            continue;
        }
        let path = module_path(rel);
        let from = path[0].clone();
        for dep in dependencies(&path, &without_test_items(text)) {
            if dep != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(dep)
                    .or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a readable folder")
        .map(|e| e.expect("a folder entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `report/charts/mod.rs` -> `[report, charts]`; `stats.rs` -> `[stats]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

/// The source with comments, string and char literals blanked (newlines kept), so that
/// neither a `crate::x` in a comment nor a brace in a string is read as code.
fn strip_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[char]| {
        out.extend(s.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < c.len() {
        let rest = &c[i..];
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        let end = if rest.starts_with(&['/', '/']) {
            i + rest.iter().position(|&ch| ch == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            block_comment_end(&c, i)
        } else if !ident_before && raw_string_start(rest).is_some() {
            let (prefix, hashes) = raw_string_start(rest).expect("checked");
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = i + prefix;
            body + find(&c[body..], &close).map_or(c.len() - body, |p| p + close.len())
        } else if rest[0] == '"' || (!ident_before && rest.starts_with(&['b', '"'])) {
            let open = i + if rest[0] == 'b' { 2 } else { 1 };
            string_end(&c, open)
        } else if rest[0] == '\'' {
            match char_literal_len(rest) {
                Some(n) => i + n,
                None => {
                    out.push('\'');
                    i += 1;
                    continue;
                }
            }
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        let end = end.min(c.len());
        blank(&mut out, &c[i..end]);
        i = end;
    }
    out
}

fn find(hay: &[char], needle: &[char]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// End (exclusive) of the block comment at `i`, nested ones included.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < c.len() {
        if c[i] == '/' && c[i + 1] == '*' {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    c.len()
}

/// `r"`, `r#"`, `br##"`...: the length of the opening and the number of `#`.
fn raw_string_start(rest: &[char]) -> Option<(usize, usize)> {
    let skip = match rest {
        ['b', 'r', ..] => 2,
        ['r', ..] => 1,
        _ => return None,
    };
    let hashes = rest[skip..].iter().take_while(|&&ch| ch == '#').count();
    (rest.get(skip + hashes) == Some(&'"')).then_some((skip + hashes + 1, hashes))
}

/// End (exclusive) of a string whose body starts at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// Length of the char literal at the start of `rest`, or `None` for a lifetime.
fn char_literal_len(rest: &[char]) -> Option<usize> {
    if rest.get(1) == Some(&'\\') {
        // `'\n'`, `'\''`, `'\u{..}'`: the escaped character is never the closing quote.
        rest.get(3..)?
            .iter()
            .position(|&ch| ch == '\'')
            .map(|p| p + 4)
    } else if rest.get(2) == Some(&'\'') {
        Some(3)
    } else {
        None
    }
}

/// Byte ranges of the items under `#[cfg(test)]`: up to the first `;` outside braces, or
/// through the block that the item opens.
fn test_items(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = text[from..].find("#[cfg(test)]") {
        let start = from + p;
        let mut i = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.push((start, i.min(bytes.len())));
        from = i.min(bytes.len());
    }
    out
}

fn without_test_items(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in test_items(text) {
        out.push_str(&text[at..start]);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Files (or folders) of the modules `file` declares as `#[cfg(test)] mod x;`.
fn test_module_files(file: &Path, text: &str) -> Vec<PathBuf> {
    let dir = match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") | Some("main.rs") => file.parent().map(Path::to_path_buf),
        _ => Some(file.with_extension("")),
    }
    .expect("a file in a folder");
    test_items(text)
        .into_iter()
        .filter_map(|(start, end)| {
            let item = text[start + "#[cfg(test)]".len()..end].trim();
            let decl = item.strip_suffix(';')?;
            let name = decl.split_whitespace().last()?;
            decl.split_whitespace()
                .any(|w| w == "mod")
                .then(|| [dir.join(format!("{name}.rs")), dir.join(name)])
        })
        .flatten()
        .collect()
}

/// The top-level modules a file of the module at `path` names: `crate::x`, `use crate::{x,
/// y::z}`, and `super::` chains that climb out of its own top-level module.
fn dependencies(path: &[String], code: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let c = code.as_bytes();
    let ident_at = |i: usize| i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == b'_');
    let mut i = 0;
    while i < c.len() {
        let starts_word = i == 0 || !(ident_at(i - 1) || c[i - 1] == b':');
        if starts_word && code[i..].starts_with("crate::") {
            i += "crate::".len();
            deps.extend(names_at(code, i));
        } else if starts_word && code[i..].starts_with("super::") {
            let mut depth = 0;
            while code[i..].starts_with("super::") {
                depth += 1;
                i += "super::".len();
            }
            if depth >= path.len() {
                deps.extend(names_at(code, i));
            }
        } else {
            i += 1;
        }
    }
    deps.retain(|d| d != "self" && d != "super" && d != "crate");
    deps
}

/// The module named at `i`: an identifier, or the first identifier of every item of a
/// `{a, b::c, ...}` group.
fn names_at(code: &str, i: usize) -> Vec<String> {
    let rest = code[i..].trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let end = group
            .char_indices()
            .find(|&(_, ch)| {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => return true,
                    '}' => depth -= 1,
                    _ => {}
                }
                false
            })
            .map_or(group.len(), |(p, _)| p);
        let mut names = Vec::new();
        let mut depth = 0;
        let mut item_start = true;
        for (p, ch) in group[..end].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                ch if item_start && (ch.is_alphanumeric() || ch == '_') => {
                    names.push(identifier(&group[p..]));
                    item_start = false;
                }
                _ => {}
            }
        }
        names
    } else {
        vec![identifier(rest)]
    }
    .into_iter()
    .filter(|n| !n.is_empty())
    .collect()
}

fn identifier(s: &str) -> String {
    s.chars()
        .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
        .collect()
}

/// Every strongly connected component with more than one module (each is at least one
/// cycle), as one cycle through it.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph
        .iter()
        .flat_map(|(a, deps)| std::iter::once(a).chain(deps.keys()))
        .collect();
    let mut reach: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for &n in &nodes {
        let mut seen = BTreeSet::new();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            for d in graph.get(x).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(d) {
                    stack.push(d);
                }
            }
        }
        reach.insert(n, seen);
    }
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in &nodes {
        if done.contains(n) || !reach[n].contains(n) {
            continue;
        }
        let component: BTreeSet<&String> = nodes
            .iter()
            .copied()
            .filter(|m| reach[n].contains(m) && reach[*m].contains(n))
            .collect();
        done.extend(component.iter().copied());
        out.push(cycle_through(graph, n, &component));
    }
    out
}

/// A shortest cycle from `start` back to itself inside `component` (breadth first).
fn cycle_through(graph: &Graph, start: &String, component: &BTreeSet<&String>) -> Vec<String> {
    let mut parent: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(x) = queue.pop_front() {
        for d in graph.get(x).into_iter().flat_map(|m| m.keys()) {
            if !component.contains(d) {
                continue;
            }
            if d == start {
                let mut path = vec![x.clone()];
                let mut at = x;
                while at != start {
                    at = parent[at];
                    path.push(at.clone());
                }
                path.reverse();
                path.push(start.clone());
                return path;
            }
            if !parent.contains_key(d) {
                parent.insert(d, x);
                queue.push_back(d);
            }
        }
    }
    unreachable!("a module of a strongly connected component lies on a cycle")
}

/// `a -> b (a/x.rs) -> c (b/y.rs) -> a (c.rs)`.
fn describe(graph: &Graph, cycle: &[String]) -> String {
    let mut s = cycle[0].clone();
    for w in cycle.windows(2) {
        s.push_str(&format!(" -> {} ({})", w[1], graph[&w[0]][&w[1]].display()));
    }
    s
}

mod checker {
    //! The checker's own parts, on tiny inputs: so that the tests above can fail.
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), PathBuf::from(format!("{a}.rs")));
        }
        g
    }

    #[test]
    fn a_cycle_is_found_and_printed_with_the_files_that_make_it() {
        let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d")]);
        let found = cycles(&g);
        assert_eq!(found, vec![vec!["a", "b", "c", "a"]]);
        assert_eq!(
            describe(&g, &found[0]),
            "a -> b (a.rs) -> c (b.rs) -> a (c.rs)"
        );
        // Two modules importing each other are a cycle too; a layered graph has none.
        assert_eq!(cycles(&graph(&[("x", "y"), ("y", "x")])).len(), 1);
        assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn paths_groups_and_super_chains_name_their_modules() {
        let code = strip_comments_and_strings(
            "use crate::{plan::Case, schema::{self, RunResult}, stats};\n\
             use super::super::worker::Outcome;\n\
             use super::sibling;\n\
             fn f() -> crate::probe::X { let s = \"crate::not_code\"; } // crate::comment\n\
             /* crate::block */ fn g<'a>(x: &'a str) -> char { 'c' }\n",
        );
        let deps = dependencies(&["runner".into(), "assemble".into()], &code);
        let want = ["plan", "probe", "schema", "stats", "worker"];
        assert_eq!(deps, want.iter().map(|s| s.to_string()).collect());
    }

    #[test]
    fn test_items_and_test_module_files_are_left_out() {
        let code = strip_comments_and_strings(
            "use crate::a::X;\n\
             #[cfg(test)]\nmod tests {\n    use crate::b::Y;\n    fn f() { {} }\n}\n\
             #[cfg(test)]\nuse crate::c::Z;\n\
             fn g() -> crate::d::W { todo!() }\n",
        );
        let deps = dependencies(&["m".into()], &without_test_items(&code));
        assert_eq!(deps, ["a", "d"].iter().map(|s| s.to_string()).collect());
        let files = test_module_files(
            Path::new("src/compare/mod.rs"),
            "pub mod render;\n#[cfg(test)]\nmod tests;\n",
        );
        assert_eq!(
            files,
            [
                PathBuf::from("src/compare/tests.rs"),
                PathBuf::from("src/compare/tests")
            ]
        );
    }
}
