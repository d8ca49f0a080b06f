//! The documentation cannot drift from the code.
//!
//! - Every ```toml block in README.md, docs/*.md and BENCHMARKS.md (the book includes it) is
//!   parsed by the real suite parser (`inferbench::suite::parse`), so an example with a field
//!   the parser rejects, a wrong type or an impossible value fails this test.
//! - Every chapter docs/SUMMARY.md lists exists, and every chapter in docs/ is listed.
//! - Every relative link in README.md and docs/*.md points at a file that exists and, when it
//!   names a heading (`file.md#anchor`), at a heading of that file.
//!
//! How a ```toml block is read (the convention for writing docs):
//! - A block with a `[suite]` table is a whole suite and is parsed as written.
//! - Any other block is a fragment: each of its top-level keys (`[[models]]`, `[[variants]]`,
//!   `[[targets]]`, `[scenarios.*]`, `[settings]`, `[check]`, `[data]`) replaces the same key
//!   of `BASE` below (a minimal valid suite: the quick-start `cnn`, an `mlp` of 64 inputs that
//!   takes the built-in 8x8 digits as they are, one CPU target, single-stream), and the result
//!   is parsed. So a `[[variants]]` fragment may name the models `cnn` and `mlp`; a fragment
//!   that trains shows its own `[data]` table.
//! - Paths resolve as for a suite file in `suites/`: `../data/digits/digits.csv.gz` is the
//!   repository's own file.
//! - ```toml,ignore-paths marks a block whose files are the reader's own (a weights file, the
//!   MiniLM folder that `scripts/fetch-minilm.sh` fetches). Its problems that say such a file
//!   or folder does not exist are allowed, as are their knock-on problems (a variant of a
//!   model that was left out for its missing file). Every other problem still fails, and
//!   where the files exist the block must parse cleanly.
//! - Text that is not a suite is not fenced as toml (use ```text).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The suite a fragment is spliced into: two models that fit the built-in digits (the cnn
/// with `resize`), one CPU target, one scenario.
const BASE: &str = r#"
[suite]
name = "docs-example"

[[models]]
name = "cnn"
arch = "cnn"
input = [28, 28, 1]
conv_channels = [32, 64]
dense = [64]
classes = 10

[[models]]
name = "mlp"
arch = "mlp"
input_size = 64
hidden = [32]
classes = 10

[[targets]]
device = "cpu"

[scenarios.single_stream]
"#;

/// Fields whose value is a file or folder of the reader's (see `ignore-paths` above).
const PATH_FIELDS: &[&str] = &[
    "weights", "dir", "path", "images", "labels", "features", "pairs",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file in docs/, relative to the repository root.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            p.strip_prefix(root())
                .expect("under the root")
                .to_path_buf()
        })
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", rel.display()))
}

/// A fenced code block: its info string's words (`toml`, `ignore-paths`), its first line's
/// number (1-based, the fence's) and its text.
#[derive(Debug, Clone)]
struct Block {
    line: usize,
    info: Vec<String>,
    text: String,
}

impl Block {
    fn language(&self) -> &str {
        self.info.first().map(String::as_str).unwrap_or("")
    }
    fn has(&self, flag: &str) -> bool {
        self.info.iter().skip(1).any(|w| w == flag)
    }
}

/// The fenced code blocks of a Markdown text (``` or ~~~ fences, possibly indented, as in
/// list items).
fn code_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                for fence in ["```", "~~~"] {
                    if let Some(info) = trimmed.strip_prefix(fence) {
                        let info = info.trim_start_matches(fence.chars().next().unwrap_or('`'));
                        let words = info
                            .split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|w| !w.is_empty())
                            .map(str::to_string)
                            .collect();
                        let block = Block {
                            line: i + 1,
                            info: words,
                            text: String::new(),
                        };
                        open = Some((fence.to_string(), block));
                        break;
                    }
                }
            }
            Some((fence, block)) => {
                if trimmed.starts_with(fence.as_str())
                    && trimmed.trim_matches(|c| c == '`' || c == '~').is_empty()
                {
                    blocks.push(block.clone());
                    open = None;
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "a code fence is never closed");
    blocks
}

/// The suite text a toml block stands for: the block itself when it has `[suite]`, else the
/// block's top-level keys spliced into `BASE`.
fn suite_text(block: &str) -> Result<String, String> {
    let fragment: toml::Table =
        toml::from_str(block).map_err(|e| format!("not valid TOML: {e}"))?;
    if fragment.contains_key("suite") {
        return Ok(block.to_string());
    }
    let mut suite: toml::Table = toml::from_str(BASE).expect("BASE is valid TOML");
    for (key, value) in fragment {
        suite.insert(key, value);
    }
    toml::to_string(&suite).map_err(|e| format!("cannot write the spliced suite: {e}"))
}

/// `path:line:column: `field`: message` lines of the parser's rendered error: the field and
/// the message of each problem.
fn problems(rendered: &str) -> Vec<(String, String)> {
    rendered
        .lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("hint:"))
        .filter_map(|line| {
            let (_, rest) = line.split_once(": `")?;
            let (field, message) = rest.split_once("`: ")?;
            Some((field.to_string(), message.to_string()))
        })
        .collect()
}

/// A problem `ignore-paths` allows: a file or folder of the reader's that is not here.
fn is_missing_path(field: &str, message: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    PATH_FIELDS.contains(&last)
        && (message.contains("does not exist") || message.contains(" lacks "))
}

/// `models[3].weights` -> 3.
fn model_index(field: &str) -> Option<usize> {
    field
        .strip_prefix("models[")?
        .split_once(']')?
        .0
        .parse()
        .ok()
}

/// Parses one toml block as the convention at the top says. `Err` names every problem.
fn check_toml_block(block: &Block, origin: &str) -> Result<(), String> {
    let text = suite_text(&block.text)?;
    // As a file of suites/, so relative paths reach the repository's data/.
    let path = root().join("suites").join(format!("{origin}.toml"));
    let Err(e) = inferbench::suite::parse(&path, &text) else {
        return Ok(());
    };
    let rendered = e.to_string();
    if !block.has("ignore-paths") {
        return Err(format!("{rendered}\n--- the suite parsed ---\n{text}"));
    }
    let found = problems(&rendered);
    // Models left out for a missing file: their variants' "no model named" is a knock-on.
    let table: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    let absent_models: BTreeSet<String> = found
        .iter()
        .filter(|(field, message)| is_missing_path(field, message))
        .filter_map(|(field, _)| model_index(field))
        .filter_map(|i| {
            table["models"]
                .get(i)?
                .get("name")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let knock_on = |field: &str, message: &str| {
        field.ends_with(".model")
            && absent_models
                .iter()
                .any(|m| message == format!("no model named `{m}`"))
    };
    let unexplained = found
        .iter()
        .any(|(field, message)| !is_missing_path(field, message) && !knock_on(field, message));
    if found.is_empty() || unexplained {
        return Err(format!(
            "problems other than missing files:\n{rendered}\n--- the suite parsed ---\n{text}"
        ));
    }
    Ok(())
}

#[test]
fn every_toml_block_in_the_docs_parses_as_a_suite() {
    let mut failures = Vec::new();
    let mut checked = 0;
    // BENCHMARKS.md is part of the book too (docs/benchmarks.md includes it).
    for file in doc_files()
        .into_iter()
        .chain([PathBuf::from("BENCHMARKS.md")])
    {
        for block in code_blocks(&read(&file)) {
            if block.language() != "toml" {
                continue;
            }
            checked += 1;
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("doc");
            let origin = format!("{stem}-line{}", block.line);
            if let Err(e) = check_toml_block(&block, &origin) {
                failures.push(format!("{}:{}: {e}", file.display(), block.line));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} toml blocks found: is the reader broken?"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- links and the book's table of contents ----

/// Links `[text](target)` outside code: (line, target).
fn links(markdown: &str) -> Vec<(usize, String)> {
    let link =
        regex::Regex::new(r"\]\(([^)\s]+)(?:\s+\x22[^\x22]*\x22)?\)").expect("a valid regex");
    let code_span = regex::Regex::new(r"`[^`]*`").expect("a valid regex");
    let mut in_fence = false;
    let mut out = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let line = code_span.replace_all(line, "");
        for c in link.captures_iter(&line) {
            out.push((i + 1, c[1].to_string()));
        }
    }
    out
}

/// A heading's anchor as GitHub and mdBook make it: lower case, spaces to `-`, letters,
/// digits, `_` and `-` kept, everything else dropped.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (repeated headings get `-1`, `-2`...). An
/// mdBook `{{#include FILE}}` line contributes FILE's headings.
fn anchors(rel: &Path) -> BTreeSet<String> {
    let text = read(rel);
    let dir = rel.parent().unwrap_or(Path::new(""));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
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
            out.extend(anchors(&normalize(&dir.join(inc.trim()))));
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor_of(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// `docs/../BENCHMARKS.md` -> `BENCHMARKS.md` (lexically; the file need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why a link from `from` (relative to the root) is broken, or `None` when it is fine.
fn broken(from: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((f, a)) => (f, Some(a)),
        None => (target, None),
    };
    let rel = if file.is_empty() {
        from.to_path_buf()
    } else {
        normalize(&from.parent().unwrap_or(Path::new("")).join(file))
    };
    if !root().join(&rel).exists() {
        return Some(format!("{} does not exist", rel.display()));
    }
    match anchor {
        Some(a) if rel.extension().is_some_and(|e| e == "md") => {
            let known = anchors(&rel);
            (!known.contains(a))
                .then(|| format!("{} has no heading with anchor `#{a}`", rel.display()))
        }
        _ => None,
    }
}

#[test]
fn every_relative_link_in_the_docs_points_at_an_existing_file_and_heading() {
    let mut failures = Vec::new();
    for file in doc_files() {
        for (line, target) in links(&read(&file)) {
            if let Some(why) = broken(&file, &target) {
                failures.push(format!("{}:{line}: ({target}): {why}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_book_lists_every_chapter_and_every_listed_chapter_exists() {
    let book: toml::Table =
        toml::from_str(&read(Path::new("docs/book.toml"))).expect("book.toml is TOML");
    assert_eq!(
        book["book"]["src"].as_str(),
        Some("."),
        "chapters live directly in docs/ (code cites docs/check.md and docs/architecture.md)"
    );
    let summary = Path::new("docs/SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&read(summary))
        .into_iter()
        .map(|(line, target)| {
            assert!(
                !target.contains('#'),
                "SUMMARY.md:{line}: a chapter is a file, not a heading: {target}"
            );
            let rel = Path::new("docs").join(&target);
            assert!(
                root().join(&rel).is_file(),
                "SUMMARY.md:{line}: {target} does not exist"
            );
            rel
        })
        .collect();
    assert!(listed.len() >= 10, "only {} chapters listed", listed.len());
    for file in doc_files() {
        let chapter = file.starts_with("docs") && file != summary;
        assert!(
            !chapter || listed.contains(&file),
            "{} is not listed in docs/SUMMARY.md",
            file.display()
        );
    }
}

// ---- the checks above, on blocks and links that are wrong on purpose ----

fn toml_block(text: &str, info: &[&str]) -> Block {
    Block {
        line: 1,
        info: info.iter().map(|s| s.to_string()).collect(),
        text: text.to_string(),
    }
}

#[test]
fn a_fragment_with_a_field_the_parser_rejects_fails() {
    let wrong = toml_block(
        "[[targets]]\ndevice = \"cpu\"\nthread = [1, 2]\n",
        &["toml"],
    );
    let e = check_toml_block(&wrong, "wrong-field").expect_err("`thread` is not a field");
    assert!(e.contains("unknown field `thread`"), "{e}");
    let right = toml_block(
        "[[targets]]\ndevice = \"cpu\"\nthreads = [1, 2]\n",
        &["toml"],
    );
    check_toml_block(&right, "right-field").expect("`threads` is a field");
}

#[test]
fn a_whole_suite_with_a_bad_value_fails() {
    let text = BASE.replace(
        "[scenarios.single_stream]",
        "[scenarios.offline]\nbatch_sizes = [0]",
    );
    let e = check_toml_block(&toml_block(&text, &["toml"]), "bad-value").expect_err("batch 0");
    assert!(e.contains("scenarios.offline.batch_sizes"), "{e}");
    check_toml_block(&toml_block(BASE, &["toml"]), "base").expect("BASE is a valid suite");
}

#[test]
fn ignore_paths_allows_a_missing_file_and_nothing_else() {
    let missing = "[[models]]\nname = \"mine\"\narch = \"mlp\"\ninput_size = 4\nclasses = 2\nweights = \"not-here.safetensors\"\n\n[[variants]]\nname = \"int8\"\nmodel = \"mine\"\nsource = \"quantize\"\ndtype = \"q8_0\"\n";
    let strict = check_toml_block(&toml_block(missing, &["toml"]), "missing-strict");
    assert!(strict
        .expect_err("the file is missing")
        .contains("does not exist"));
    check_toml_block(
        &toml_block(missing, &["toml", "ignore-paths"]),
        "missing-allowed",
    )
    .expect("ignore-paths allows the missing file and its variant's knock-on");
    let typo = missing.replace("input_size", "inputsize");
    let e = check_toml_block(&toml_block(&typo, &["toml", "ignore-paths"]), "typo")
        .expect_err("an unknown field is never allowed");
    assert!(e.contains("unknown field `inputsize`"), "{e}");
    let also_wrong = format!("{missing}\n[settings]\nmax_noise = 2.0\n");
    let e = check_toml_block(
        &toml_block(&also_wrong, &["toml", "ignore-paths"]),
        "also-wrong",
    )
    .expect_err("a bad value beside the missing file still fails");
    assert!(e.contains("settings.max_noise"), "{e}");
}

#[test]
fn code_blocks_are_read_with_their_info_words() {
    let md = "text\n```toml,ignore-paths\n[check]\n```\n  ```sh\n  ls\n  ```\n";
    let blocks = code_blocks(md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].language(), "toml");
    assert!(blocks[0].has("ignore-paths"));
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[0].text, "[check]\n");
    assert_eq!(blocks[1].language(), "sh");
}

#[test]
fn broken_links_and_anchors_are_found() {
    assert_eq!(
        anchor_of("Sharding: `run --shard K/N` and `merge`"),
        "sharding-run---shard-kn-and-merge"
    );
    assert_eq!(anchor_of("What the folder holds"), "what-the-folder-holds");
    let readme = Path::new("README.md");
    assert!(broken(readme, "docs/no-such-chapter.md").is_some());
    assert!(broken(readme, "docs/check.md#no-such-heading").is_some());
    assert_eq!(broken(readme, "docs/check.md"), None);
    assert_eq!(broken(readme, "https://example.org/x.md"), None);
    let found = links("[a](b.md) `[c](d.md)`\n```\n[e](f.md)\n```\n[g](h.md#i \"title\")");
    assert_eq!(
        found,
        vec![(1, "b.md".to_string()), (5, "h.md#i".to_string())]
    );
}
