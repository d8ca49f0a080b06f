//! Every document a comment, an error hint or a script names exists, and so does every
//! section it names.
//!
//! The convention: `docs/<chapter>.md` for a chapter, `docs/<chapter>.md, "<Heading>"` for a
//! section, with the heading's exact text (Markdown backticks removed); BENCHMARKS.md, which
//! stays at the root, is cited the same way. A citation may wrap onto the next comment line.
//! Documents outside the repository (DESIGN.md, STYLE.md) and sections of the README (a
//! front page, kept short) are never cited from src/.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

/// Citations that must stay as they are, with the reason. Each must still be found (so the
/// entry goes when the citation is fixed).
const KEPT: &[(&str, &str, &str)] = &[
    (
        "suites/ci.toml",
        "Undisturbed processes",
        "the suite's sha256 is pinned by results/baselines/ci.json",
    ),
    (
        "suites/ci.toml",
        "CI regression gate",
        "the suite's sha256 is pinned by results/baselines/ci.json",
    ),
];

/// Where citations are looked for (folders walked, files read). The book's chapters link
/// to each other with Markdown links, which tests/docs.rs checks; BENCHMARKS.md is a log of
/// measurements that cites sections in words.
const SCANNED: &[&str] = &[
    "src",
    "tests",
    "benches",
    "scripts",
    "suites",
    ".ci",
    ".github",
    "BENCHMARKS.md",
];

/// Files that hold made-up citations on purpose: the tests of the checkers.
const NOT_SCANNED: &[&str] = &["tests/docs.rs", "tests/doc_refs.rs"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, PartialEq)]
struct Citation {
    line: usize,
    /// Relative to the repository root, as in `docs/check.md` or `BENCHMARKS.md`.
    file: String,
    heading: Option<String>,
}

/// A text's lines joined with spaces, each line's indentation and comment marker (`//!`,
/// `///`, `//`, `#`) dropped, so that a citation wrapped onto the next comment line reads as
/// one; with the offset where each line starts.
fn joined(text: &str) -> (String, Vec<usize>) {
    let mut out = String::new();
    let mut starts = Vec::new();
    for line in text.lines() {
        let mut l = line.trim_start();
        for marker in ["//!", "///", "//", "#"] {
            if let Some(rest) = l.strip_prefix(marker) {
                l = rest.trim_start();
                break;
            }
        }
        if !out.is_empty() {
            out.push(' ');
        }
        starts.push(out.len());
        out.push_str(l);
    }
    (out, starts)
}

/// The citations in a source text (a Rust string literal's `\"` counts as a quote).
fn citations(text: &str) -> Vec<Citation> {
    let re = Regex::new(r#"\b(docs/[a-z0-9-]+\.md|BENCHMARKS\.md)(?:,\s*\\?"([^"\\]+)\\?")?"#)
        .expect("a valid regex");
    let (text, starts) = joined(text);
    re.captures_iter(&text)
        .map(|c| {
            let at = c.get(0).expect("the whole match").start();
            Citation {
                line: starts.partition_point(|&s| s <= at),
                file: c[1].to_string(),
                heading: c.get(2).map(|h| h.as_str().to_string()),
            }
        })
        .collect()
}

/// A Markdown file's headings, backticks removed; an mdBook `{{#include FILE}}` line brings
/// FILE's headings. Lines inside code fences are not headings.
fn headings(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(inc) = trimmed
            .strip_prefix("{{#include ")
            .and_then(|r| r.strip_suffix("}}"))
        {
            let dir = file.parent().unwrap_or(Path::new(""));
            out.extend(headings(&dir.join(inc.trim())));
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            out.insert(line[hashes..].trim().replace('`', ""));
        }
    }
    out
}

/// What is wrong with a citation, if anything.
fn broken(c: &Citation) -> Option<String> {
    let path = root().join(&c.file);
    if !path.is_file() {
        return Some(format!("{} does not exist", c.file));
    }
    let heading = c.heading.as_ref()?;
    if headings(&path).contains(heading) {
        return None;
    }
    Some(format!(
        "{} has no heading \"{heading}\" (cite a heading's exact text, backticks removed)",
        c.file
    ))
}

/// Every text file under the scanned folders, relative to the root, sorted.
fn scanned_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if dir.is_file() {
            out.push(dir.to_path_buf());
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("a readable entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for dir in SCANNED {
        walk(&root().join(dir), &mut out);
    }
    let mut files: Vec<PathBuf> = out
        .into_iter()
        .map(|p| {
            p.strip_prefix(root())
                .expect("under the root")
                .to_path_buf()
        })
        .filter(|p| !NOT_SCANNED.iter().any(|s| p == Path::new(s)))
        .collect();
    files.sort();
    files
}

/// Text files only: binary fixtures and large run files are passed over.
fn read_text(rel: &Path) -> Option<String> {
    let path = root().join(rel);
    if std::fs::metadata(&path).ok()?.len() > 1 << 20 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

#[test]
fn every_cited_chapter_and_heading_exists() {
    let mut problems = Vec::new();
    let mut kept_found = BTreeSet::new();
    let mut count = 0;
    for rel in scanned_files() {
        let Some(text) = read_text(&rel) else {
            continue;
        };
        for c in citations(&text) {
            count += 1;
            let Some(problem) = broken(&c) else {
                continue;
            };
            let kept = KEPT.iter().position(|(file, heading, _)| {
                rel == Path::new(file) && c.heading.as_deref() == Some(*heading)
            });
            match kept {
                Some(i) => {
                    kept_found.insert(i);
                }
                None => problems.push(format!("{}:{}: {problem}", rel.display(), c.line)),
            }
        }
    }
    assert!(
        count > 30,
        "only {count} citations found: is the scan reading the sources?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (i, (file, heading, why)) in KEPT.iter().enumerate() {
        assert!(
            kept_found.contains(&i),
            "{file} no longer cites \"{heading}\" (kept because {why}): remove it from KEPT"
        );
    }
}

/// Files the docs name that are not in the repository on purpose: the worked examples'
/// new kinds, which a contributor writes.
const EXAMPLE_FILES: &[&str] = &["src/model/scale.rs", "src/scenario/repeat.rs"];

#[test]
fn every_source_file_the_docs_name_exists() {
    // A path from the repository root: not part of a longer path (`/src/...` in a
    // Dockerfile is the image's).
    let re =
        Regex::new(r"(?:^|[^/\w.-])(src/[A-Za-z0-9_/.-]*[A-Za-z0-9_/])").expect("a valid regex");
    let mut docs = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/ exists") {
        let path = entry.expect("a readable entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(
                path.strip_prefix(root())
                    .expect("under the root")
                    .to_path_buf(),
            );
        }
    }
    let mut named = 0;
    let mut problems = Vec::new();
    for doc in docs {
        let text = read_text(&doc).expect("a doc is text");
        for (i, line) in text.lines().enumerate() {
            for c in re.captures_iter(line) {
                named += 1;
                let path = &c[1];
                if !root().join(path).exists() && !EXAMPLE_FILES.contains(&path) {
                    problems.push(format!(
                        "{}:{}: {path} does not exist",
                        doc.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(
        named > 10,
        "only {named} paths found: is the scan reading the docs?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn src_cites_no_document_outside_the_repository_nor_a_readme_section() {
    let banned = [
        "DESIGN.md",
        "STYLE.md",
        "the README's",
        "How each number is computed",
        "README:",
        "README \"",
        "README, \"",
    ];
    let mut problems = Vec::new();
    for rel in scanned_files().iter().filter(|p| p.starts_with("src")) {
        let Some(text) = read_text(rel) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            for b in banned.iter().filter(|b| line.contains(**b)) {
                problems.push(format!("{}:{}: cites `{b}`", rel.display(), i + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_citation_wrapped_over_comment_lines_is_read_whole() {
    let text = "/// as measured (docs/check.md, \"Undisturbed processes: a\n    /// reference kernel beside the model\").\nfn f() {}\n";
    assert_eq!(
        citations(text),
        [Citation {
            line: 1,
            file: "docs/check.md".into(),
            heading: Some("Undisturbed processes: a reference kernel beside the model".into()),
        }]
    );
    let hint = r#"Some("docs/models.md, \"Weights layout\" lists them")"#;
    assert_eq!(
        citations(hint)[0].heading.as_deref(),
        Some("Weights layout")
    );
    let chapter = "# see docs/cuda.md.\n# and BENCHMARKS.md, issue #6\n";
    let found = citations(chapter);
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].line, found[0].heading.clone()), (1, None));
    assert_eq!(
        (found[1].line, found[1].file.as_str()),
        (2, "BENCHMARKS.md")
    );
}

#[test]
fn a_missing_chapter_or_a_leading_part_of_a_heading_is_broken() {
    let cite = |file: &str, heading: Option<&str>| Citation {
        line: 1,
        file: file.into(),
        heading: heading.map(str::to_string),
    };
    assert!(broken(&cite("docs/no-such-chapter.md", None)).is_some());
    assert!(broken(&cite("docs/check.md", Some("Undisturbed processes"))).is_some());
    assert_eq!(broken(&cite("docs/check.md", None)), None);
    assert_eq!(
        broken(&cite(
            "docs/check.md",
            Some("Undisturbed processes: a reference kernel beside the model")
        )),
        None
    );
    // Backticks are dropped from headings: "## `[[models]]`" is cited as "[[models]]".
    assert_eq!(broken(&cite("docs/suite.md", Some("[[models]]"))), None);
}
