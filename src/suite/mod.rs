//! Suite files: parse (TOML), validate (every problem at once, each with file, line,
//! column and a hint), and resolve into a plain `Suite`.

mod capability;
pub mod check;
mod data;
mod models;
pub mod recipe;
pub mod schema;
mod settings;
mod targets;
mod variant_entry;
mod variants;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::de::DeTable;
use toml::Spanned;

use crate::data::DataSpec;
use crate::model::{self, Architecture, WeightSource};
use crate::scenario::ScenarioSpec;
use crate::schema::{CheckConfig, Settings, Stage};
use crate::spec::{syntax_problem, Checker, Problem};
use crate::target::{DeviceKind, Target};
use recipe::{Recipe, TrainSpec};
use schema::*;

/// Undisturbed processes per case that extra processes (`max_processes`) are run for.
pub const UNDISTURBED_WANTED: usize = 5;

/// Most worker processes per case a suite may ask for.
pub const MAX_PROCESSES: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDef {
    pub name: String,
    pub arch: Architecture,
    /// The initial weights (seeded or a file); the baseline when there is no `train`.
    pub weights: WeightSource,
    /// Shape of a raw input before preprocessing (default: the model's input).
    pub raw_input: Option<Vec<usize>>,
    /// Train the baseline from `weights` on the suite's data.
    pub train: Option<TrainSpec>,
    /// A `bert`'s `tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantDef {
    pub name: String,
    pub model: String,
    /// `baseline`, `file`, `quantize`, `prune`, `distill` or `compress`.
    pub source: String,
    pub recipe: Recipe,
    /// The variant's own architecture (smaller after structured pruning, the student's...).
    pub arch: Architecture,
    /// `Unbuilt` for variants `run` must build first.
    pub weights: WeightSource,
}

impl VariantDef {
    /// `<model>-<variant>`, the first part of every case id.
    pub fn id(&self) -> String {
        format!("{}-{}", self.model, self.name)
    }
}

/// A validated suite: plain data, ready to expand into a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    /// SHA-256 of the suite file's bytes, so runs of different suites are told apart.
    pub sha256: String,
    pub models: Vec<ModelDef>,
    pub variants: Vec<VariantDef>,
    pub targets: Vec<Target>,
    /// `[scenarios]`: each kind's table as validated, in the registry's order (plan order).
    pub scenarios: Vec<ScenarioSpec>,
    pub settings: Settings,
    /// Thresholds of the regression check (`[check]`).
    pub check: CheckConfig,
    /// `[data]`: trains recipe variants and scores every variant.
    pub data: Option<DataSpec>,
}

impl Suite {
    /// The suite as `--quick` runs its scenarios: each kind's quick table
    /// (`scenario::ScenarioKind::quick`; the settings' quick form is `Settings::quick`).
    pub fn with_quick_scenarios(mut self) -> Suite {
        self.scenarios = self.scenarios.iter().map(|s| s.quick()).collect();
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read suite file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "invalid suite {} ({} problem{}):",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str(&format!("\n  {}:{p}", path.display()));
    }
    out
}

/// Reads, parses, validates and resolves a suite file.
pub fn load(path: &Path) -> Result<Suite, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|error| SuiteError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(path, &text)
}

/// As `load`, on text already read; `path` locates errors and relative weight paths.
pub fn parse(path: &Path, text: &str) -> Result<Suite, SuiteError> {
    let invalid = |problems| SuiteError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let checker = Checker::new(text).with_base(&base);
    let lines = checker.lines();
    // The parsed document keeps every value's span: the suite's types are read from it, and
    // each model kind reads its own fields from it (`model::Entry`).
    let (root, raw): (_, SuiteFile) = match DeTable::parse(text) {
        Ok(root) => {
            let de = toml::de::Deserializer::from(root.clone());
            let raw = serde_path_to_error::deserialize(de)
                .map_err(|e| invalid(vec![syntax_problem(lines, e)]))?;
            (root, raw)
        }
        Err(e) => {
            let (line, column) = e.span().map(|s| lines.locate(s.start)).unzip();
            return Err(invalid(vec![Problem {
                field: "(file)".into(),
                line,
                column,
                message: e.message().trim().to_string(),
                hint: Some("the file is not valid TOML; see https://toml.io for the syntax".into()),
            }]));
        }
    };
    let mut v = Validator { checker, base };
    let suite = v.resolve(path, text, raw, root.get_ref());
    let problems = v.checker.into_problems();
    match suite {
        Some(suite) if problems.is_empty() => Ok(suite),
        _ => Err(invalid(problems)),
    }
}

/// Resolves a parsed suite file, recording every problem in its `Checker` (whose checks it
/// reaches through `Deref`).
struct Validator {
    checker: Checker,
    /// The suite file's folder: relative paths in the suite start there.
    base: PathBuf,
}

impl std::ops::Deref for Validator {
    type Target = Checker;
    fn deref(&self) -> &Checker {
        &self.checker
    }
}

impl std::ops::DerefMut for Validator {
    fn deref_mut(&mut self) -> &mut Checker {
        &mut self.checker
    }
}

impl Validator {
    /// A count of worker processes: at least 1, at most `MAX_PROCESSES`.
    fn process_count(&mut self, field: &str, v: &Spanned<i64>, hint: &str) -> Option<usize> {
        self.bounded_count(field, v, 1, MAX_PROCESSES, hint)
    }

    fn resolve(
        &mut self,
        path: &Path,
        text: &str,
        raw: SuiteFile,
        root: &DeTable<'_>,
    ) -> Option<Suite> {
        let name = raw.suite.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains(['/', '\\']) {
            self.problem(
                "suite.name",
                raw.suite.name.span(),
                "must be a non-empty name without slashes",
                Some("it names the results folder, as in `quickstart`"),
            );
        }
        let settings = self.settings(&raw.settings);
        let data = self.data(&raw.data);
        let (models, entries) = self.models(
            &raw.models,
            &model::entry::tables(root, "models"),
            settings.seed,
            data.as_ref().and_then(|d| d.1.as_ref()),
            raw.data.is_some(),
        );
        self.text_and_models(&raw, &models, data.as_ref().map(|d| &d.0));
        let variants = self.variants(
            &raw.variants,
            &model::entry::tables(root, "variants"),
            &models,
            &entries,
            data.is_some() || raw.data.is_some(),
            settings.seed,
        );
        let targets = self.targets(&raw.targets);
        let scenarios = crate::scenario::validate(&raw.scenarios, &mut self.checker, &settings);
        self.capabilities(&raw, &models, &variants, &scenarios);
        self.batch_sizes_fit(&raw, &models, &scenarios);
        let check = self.check(&raw.check);
        Some(Suite {
            path: path.to_path_buf(),
            name,
            description: raw.suite.description,
            sha256: format!("{:x}", Sha256::digest(text.as_bytes())),
            models,
            variants,
            targets,
            scenarios,
            settings,
            check,
            data: data.map(|d| d.0),
        })
    }
}

impl Validator {
    /// Every model takes every batch size the cases run (an ONNX graph may fix its batch,
    /// or fail shape inference at a size): problems at the model's `arch`.
    fn batch_sizes_fit(
        &mut self,
        raw: &SuiteFile,
        models: &[ModelDef],
        scenarios: &[crate::scenario::ScenarioSpec],
    ) {
        let mut sizes: Vec<usize> = scenarios
            .iter()
            .flat_map(|s| s.expand())
            .flat_map(|cell| cell.case.input_batches(cell.batch_size))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() {
            return;
        }
        for (i, entry) in raw.models.get_ref().iter().enumerate() {
            let entry = entry.get_ref();
            let Some(m) = models.iter().find(|m| &m.name == entry.name.get_ref()) else {
                continue;
            };
            if let Err(message) = m.arch.kind().check_batch_sizes(&sizes) {
                self.problem(
                    format!("models[{i}].arch"),
                    entry.arch.span(),
                    format!("model `{}` cannot run the suite's batch sizes {sizes:?}: {message}", m.name),
                    Some("export the model with a dynamic batch axis, or use batch sizes it takes (docs/onnx.md, \"Exporting from PyTorch\")"),
                );
            }
        }
    }
}

const NAME_HINT: &str =
    "names use letters, digits, `_`, `-` and `.` (they become part of case ids)";

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests;
