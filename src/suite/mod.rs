//! Suite files: parse (TOML), validate (every problem at once, each with file, line,
//! column and a hint), and resolve into a plain `Suite`.

pub mod check;
pub mod load;
pub mod recipe;
pub mod schema;
mod variants;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::data::DataSpec;
use crate::model::{self, Architecture, Padding, WeightSource};
use crate::schema::{CheckConfig, Scenario, Settings, Stage};
use crate::spec::{syntax_problem, Checker, Problem};
use crate::target::{DeviceKind, Target};
use recipe::{Recipe, TrainSpec};
use schema::*;

pub use load::{FindMaxSpec, Load, MultiStreamSpec, ServerLoad, ServerSpec, ServerTarget};

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
    /// Scenarios with their batch sizes (`single_stream` is always batch 1).
    pub scenarios: Vec<(Scenario, Vec<usize>)>,
    /// `[scenarios.server]`.
    #[serde(default)]
    pub server: Option<ServerSpec>,
    /// `[scenarios.multi_stream]`.
    #[serde(default)]
    pub multi_stream: Option<MultiStreamSpec>,
    pub settings: Settings,
    /// Thresholds of the regression check (`[check]`).
    pub check: CheckConfig,
    /// `[data]`: trains recipe variants and scores every variant.
    pub data: Option<DataSpec>,
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
    let checker = Checker::new(text);
    let lines = checker.lines();
    let raw: SuiteFile = match toml::de::Deserializer::parse(text) {
        Ok(de) => serde_path_to_error::deserialize(de)
            .map_err(|e| invalid(vec![syntax_problem(lines, e)]))?,
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
    let mut v = Validator {
        checker,
        base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let suite = v.resolve(path, text, raw);
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

    fn resolve(&mut self, path: &Path, text: &str, raw: SuiteFile) -> Option<Suite> {
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
        let models = self.models(
            &raw.models,
            settings.seed,
            data.as_ref().and_then(|d| d.1.as_ref()),
            raw.data.is_some(),
        );
        self.text_and_models(&raw, &models, data.as_ref().map(|d| &d.0));
        let variants = self.variants(
            &raw.variants,
            &models,
            raw.models.get_ref(),
            data.is_some() || raw.data.is_some(),
            settings.seed,
        );
        let targets = self.targets(&raw.targets);
        let scenarios = self.scenarios(&raw.scenarios);
        let server = raw
            .scenarios
            .get_ref()
            .server
            .as_ref()
            .and_then(|e| self.server(e, &settings));
        let multi_stream = raw
            .scenarios
            .get_ref()
            .multi_stream
            .as_ref()
            .and_then(|e| self.multi_stream(e));
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
            server,
            multi_stream,
            settings,
            check,
            data: data.map(|d| d.0),
        })
    }

    /// Sentences feed only `bert` models, and a `bert` is scored only on sentences.
    fn text_and_models(
        &mut self,
        raw: &SuiteFile,
        models: &[ModelDef],
        data: Option<&crate::data::DataSpec>,
    ) {
        let text = data.map(|d| d.source.is_text());
        for m in models {
            let Some((i, entry)) = raw
                .models
                .get_ref()
                .iter()
                .enumerate()
                .find(|(_, e)| e.get_ref().name.get_ref() == &m.name)
            else {
                continue;
            };
            let span = entry.get_ref().arch.span();
            match (m.arch.is_bert(), text) {
                (true, Some(false)) => self.problem(
                    format!("models[{i}].arch"),
                    span,
                    "a `bert` is scored on sentences, and the suite's [data] holds labelled samples",
                    Some("use [data] with source = \"sentences\", or put the bert in a suite of its own"),
                ),
                (false, Some(true)) => self.problem(
                    format!("models[{i}].arch"),
                    span,
                    format!("an `{}` cannot be scored on sentences ([data] source = \"sentences\")", m.arch.name()),
                    Some("sentences are for `bert` models; put the others in a suite of their own"),
                ),
                _ => {}
            }
        }
    }

    fn settings(&mut self, s: &SettingsEntry) -> Settings {
        let d = Settings::default();
        let mut out = Settings {
            warmup_s: self.seconds("settings.warmup_s", &s.warmup_s, d.warmup_s, true),
            min_time_s: self.seconds("settings.min_time_s", &s.min_time_s, d.min_time_s, true),
            max_time_s: self.seconds("settings.max_time_s", &s.max_time_s, d.max_time_s, false),
            case_timeout_s: self.seconds(
                "settings.case_timeout_s",
                &s.case_timeout_s,
                d.case_timeout_s,
                false,
            ),
            seed: s.seed.unwrap_or(d.seed),
            ..d
        };
        if let Some(v) = &s.min_iterations {
            out.min_iterations = self.count("settings.min_iterations", v, 1).unwrap_or(1) as u64;
        }
        if let Some(v) = &s.max_samples {
            out.max_samples = self
                .count("settings.max_samples", v, 2)
                .unwrap_or(out.max_samples);
        }
        if let Some(v) = &s.bootstrap_resamples {
            out.bootstrap_resamples = self
                .count("settings.bootstrap_resamples", v, 100)
                .unwrap_or(out.bootstrap_resamples);
        }
        if let Some(v) = &s.max_noise {
            let x = *v.get_ref();
            if !(x > 0.0 && x < 1.0) {
                self.problem(
                    "settings.max_noise",
                    v.span(),
                    format!("must be between 0 and 1 (exclusive), got {x}"),
                    Some(
                        "it is the median CI's half-width relative to the median: 0.02 means +/-2%",
                    ),
                );
            } else {
                out.max_noise = x;
            }
        }
        if let Some(v) = &s.processes {
            let hint = "5 to 20 processes per case are enough for `check` (docs/check.md)";
            if let Some(n) = self.process_count("settings.processes", v, hint) {
                out.processes = n;
            }
        }
        if let Some(v) = &s.max_processes {
            let hint = "two to three times `processes` bounds the run's time (docs/check.md)";
            match self.process_count("settings.max_processes", v, hint) {
                Some(n) if n < out.processes => self.problem(
                    "settings.max_processes",
                    v.span(),
                    format!("must be at least `processes` ({}), got {n}", out.processes),
                    Some("it counts all processes of a case, the first `processes` included"),
                ),
                Some(n) => out.max_processes = Some(n),
                None => {}
            }
        }
        if let Some(v) = &s.max_rss_mb {
            out.max_rss_mb = self.count("settings.max_rss_mb", v, 1).map(|n| n as u64);
        }
        out.max_warmup_s = self.seconds(
            "settings.max_warmup_s",
            &s.max_warmup_s,
            out.max_warmup_s,
            false,
        );
        if let Some(v) = &s.max_warmup_s {
            if out.max_warmup_s < out.warmup_s {
                self.problem(
                    "settings.max_warmup_s",
                    v.span(),
                    format!(
                        "max_warmup_s ({}) is shorter than warmup_s ({})",
                        out.max_warmup_s, out.warmup_s
                    ),
                    Some("warmup_s is the minimum warm-up, max_warmup_s the maximum"),
                );
            }
        }
        if let Some(v) = &s.warmup_tolerance {
            let x = *v.get_ref();
            if x.is_finite() && x > 0.0 {
                out.warmup_tolerance = x;
            } else {
                self.problem(
                    "settings.warmup_tolerance",
                    v.span(),
                    format!("must be more than zero, got {x}"),
                    Some("as in 0.05 (5%)"),
                );
            }
        }
        if let Some(v) = &s.timed {
            if let Some(timed) = self.timed_stages(v) {
                out.timed = timed;
            }
        }
        for (field, value, slot) in [
            ("settings.tdp_watts", &s.tdp_watts, &mut out.tdp_watts),
            ("settings.tdp_threads", &s.tdp_threads, &mut out.tdp_threads),
        ] {
            if let Some(v) = value {
                let x = *v.get_ref();
                if x.is_finite() && x > 0.0 {
                    *slot = Some(x);
                } else {
                    self.problem(
                        field,
                        v.span(),
                        format!("must be more than zero, got {x}"),
                        Some("as in tdp_watts = 65 (the CPU package's TDP)"),
                    );
                }
            }
        }
        out.idle_power_s = self.seconds(
            "settings.idle_power_s",
            &s.idle_power_s,
            out.idle_power_s,
            true,
        );
        if let Some(min) = &s.min_time_s {
            if out.min_time_s > out.max_time_s {
                self.problem(
                    "settings.min_time_s",
                    min.span(),
                    format!(
                        "min_time_s ({}) is longer than max_time_s ({})",
                        out.min_time_s, out.max_time_s
                    ),
                    Some("raise max_time_s or lower min_time_s"),
                );
            }
        }
        let longest_warmup = out.max_warmup_s.max(out.warmup_s);
        if out.max_time_s + longest_warmup >= out.case_timeout_s {
            let span = s
                .case_timeout_s
                .as_ref()
                .or(s.max_time_s.as_ref())
                .map(|v| v.span());
            if let Some(span) = span {
                self.problem(
                    "settings.case_timeout_s",
                    span,
                    format!(
                        "case_timeout_s ({}) must exceed max_warmup_s + max_time_s ({})",
                        out.case_timeout_s,
                        longest_warmup + out.max_time_s
                    ),
                    Some("leave room for building the model, as in case_timeout_s = 120"),
                );
            }
        }
        out
    }

    fn timed_stages(&mut self, v: &Spanned<Vec<String>>) -> Option<Vec<Stage>> {
        const HINT: &str = "use [\"forward\"], [\"preprocess\", \"forward\"], [\"forward\", \"postprocess\"] or [\"preprocess\", \"forward\", \"postprocess\"]";
        let mut stages = Vec::new();
        for name in v.get_ref() {
            let stage = match name.as_str() {
                "preprocess" => Stage::Preprocess,
                "forward" => Stage::Forward,
                "postprocess" => Stage::Postprocess,
                other => {
                    self.problem(
                        "settings.timed",
                        v.span(),
                        format!("unknown stage `{other}`"),
                        Some(HINT),
                    );
                    return None;
                }
            };
            stages.push(stage);
        }
        let contiguous = stages.windows(2).all(|w| w[1] as u8 == w[0] as u8 + 1);
        if !stages.contains(&Stage::Forward) || !contiguous {
            self.problem(
                "settings.timed",
                v.span(),
                "the timed stages must include `forward` and be consecutive, in pipeline order",
                Some(HINT),
            );
            return None;
        }
        Some(stages)
    }

    /// `raw_input`: the shape of inputs before preprocessing, same channels or features.
    fn raw_input(
        &mut self,
        at: &str,
        m: &ModelEntry,
        arch: &Architecture,
    ) -> Option<Option<Vec<usize>>> {
        let Some(v) = &m.raw_input else {
            return Some(None);
        };
        let field = format!("{at}.raw_input");
        let dims = self.counts(&field, v, 1, false)?;
        let input = arch.input_shape();
        let ok = match arch {
            Architecture::Cnn { .. } => dims.len() == 3 && dims[2] == input[0],
            Architecture::Mlp { .. } => dims.len() == 1 && dims[0] == input[0],
            Architecture::Bert { .. } => false,
        };
        if !ok {
            let hint = match arch {
                Architecture::Cnn { .. } => format!("[height, width, channels] with the model's {} channel(s); images are resized to `input`", input[0]),
                Architecture::Mlp { .. } => format!("[{}]: an mlp's raw input has its input_size features", input[0]),
                Architecture::Bert { .. } => "a bert's raw inputs are sentences; remove `raw_input` and set `seq_len`".to_string(),
            };
            self.problem(
                field,
                v.span(),
                format!("raw input {dims:?} does not fit the model"),
                Some(&hint),
            );
            return None;
        }
        Some(Some(dims))
    }

    fn models(
        &mut self,
        models: &Spanned<Vec<Spanned<ModelEntry>>>,
        default_seed: u64,
        data: Option<&crate::data::Dataset>,
        data_declared: bool,
    ) -> Vec<ModelDef> {
        if models.get_ref().is_empty() {
            self.problem(
                "models",
                models.span(),
                "no models",
                Some("add a [[models]] table"),
            );
        }
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        for (i, m) in models.get_ref().iter().enumerate() {
            let at = format!("models[{i}]");
            let m = m.get_ref();
            let name = m.name.get_ref().clone();
            if !valid_name(&name) {
                self.problem(
                    format!("{at}.name"),
                    m.name.span(),
                    format!("`{name}` is not a valid name"),
                    Some(NAME_HINT),
                );
            } else if !names.insert(name.clone()) {
                self.problem(
                    format!("{at}.name"),
                    m.name.span(),
                    format!("model `{name}` is defined twice"),
                    Some("give each model its own name"),
                );
            }
            let Some(arch) = self.architecture(&at, m) else {
                continue;
            };
            let bert_dir = match (&arch, &m.dir) {
                (Architecture::Bert { .. }, Some(d)) => Some(self.base.join(d.get_ref())),
                _ => None,
            };
            let weights = match (&bert_dir, &m.weights) {
                (Some(dir), _) => WeightSource::Safetensors {
                    path: dir.join("model.safetensors"),
                },
                (None, None) => WeightSource::Seeded {
                    seed: m.seed.unwrap_or(default_seed),
                },
                (None, Some(p)) => match self.weights_file(&format!("{at}.weights"), p, &arch) {
                    Some(path) => WeightSource::file(path),
                    None => continue,
                },
            };
            if let Some(ds) = data.filter(|_| !arch.is_bert()) {
                if let Err(e) = ds.check_model(&arch) {
                    let span = m
                        .input
                        .as_ref()
                        .map(|v| v.span())
                        .or(m.input_size.as_ref().map(|v| v.span()))
                        .unwrap_or(m.arch.span());
                    let field = if m.input.is_some() {
                        "input"
                    } else {
                        "input_size"
                    };
                    self.problem(
                        format!("{at}.{field}"),
                        span,
                        e,
                        Some("every model is scored on the suite's [data]: match its input, or set `resize` in [data] (\"bilinear\", \"nearest\" or \"pad\")"),
                    );
                }
            }
            let train = match &m.train {
                None => None,
                Some(t) => {
                    let spec = self.train_spec(&format!("{at}.train"), t, default_seed);
                    if !data_declared {
                        self.problem(
                            format!("{at}.train"),
                            t.span(),
                            "training needs data, and the suite has no [data] table",
                            Some("add a [data] table, as in `[data]` with `source = \"digits\"`"),
                        );
                    }
                    spec
                }
            };
            let Some(raw_input) = self.raw_input(&at, m, &arch) else {
                continue;
            };
            out.push(ModelDef {
                name,
                arch,
                weights,
                raw_input,
                train,
                tokenizer: bert_dir.map(|d| d.join("tokenizer.json")),
            });
        }
        out
    }

    fn architecture(&mut self, at: &str, m: &ModelEntry) -> Option<Architecture> {
        let arch = m.arch.get_ref().as_str();
        if arch == "bert" {
            return self.bert_architecture(at, m);
        }
        let classes = match &m.classes {
            Some(c) => self.count(&format!("{at}.classes"), c, 1),
            None if matches!(arch, "mlp" | "cnn") => {
                self.problem(
                    format!("{at}.classes"),
                    m.arch.span(),
                    format!("missing field `classes`: an `{arch}` needs its output width"),
                    Some("add `classes = 10`"),
                );
                None
            }
            None => None,
        };
        let bert_fields = [("dir", m.dir.is_some()), ("seq_len", m.seq_len.is_some())];
        for (field, present) in bert_fields {
            if present && matches!(arch, "mlp" | "cnn") {
                self.problem(
                    format!("{at}.{field}"),
                    m.arch.span(),
                    format!("`{field}` does not apply to arch `{arch}`"),
                    Some("it is a `bert` field; remove it, or change `arch`"),
                );
            }
        }
        let fields_of_other: &[(&str, bool)] = match arch {
            "mlp" => &[
                ("input", m.input.is_some()),
                ("conv_channels", m.conv_channels.is_some()),
                ("pool_after", m.pool_after.is_some()),
                ("kernel", m.kernel.is_some()),
                ("padding", m.padding.is_some()),
                ("pool", m.pool.is_some()),
                ("dense", m.dense.is_some()),
            ],
            "cnn" => &[
                ("input_size", m.input_size.is_some()),
                ("hidden", m.hidden.is_some()),
            ],
            other => {
                let hint = match strsim::damerau_levenshtein(other, "mlp")
                    .min(strsim::damerau_levenshtein(other, "cnn"))
                    .min(strsim::damerau_levenshtein(other, "bert"))
                {
                    d if d <= 1 => "did you mean `mlp`, `cnn` or `bert`?",
                    _ => "architectures are `mlp`, `cnn` and `bert`",
                };
                self.problem(
                    format!("{at}.arch"),
                    m.arch.span(),
                    format!("unknown architecture `{other}`"),
                    Some(hint),
                );
                return None;
            }
        };
        for (field, present) in fields_of_other {
            if *present {
                self.problem(
                    format!("{at}.{field}"),
                    m.arch.span(),
                    format!("`{field}` does not apply to arch `{arch}`"),
                    Some("remove it, or change `arch`"),
                );
            }
        }
        if arch == "mlp" {
            let Some(input) = &m.input_size else {
                self.problem(
                    format!("{at}.input_size"),
                    m.arch.span(),
                    "an `mlp` needs `input_size`",
                    Some("add `input_size = 64`, the number of input features"),
                );
                return None;
            };
            let input_size = self.count(&format!("{at}.input_size"), input, 1);
            let hidden = match &m.hidden {
                Some(h) => self.counts(&format!("{at}.hidden"), h, 1, true),
                None => Some(Vec::new()),
            };
            return Some(Architecture::Mlp {
                input_size: input_size?,
                hidden: hidden?,
                classes: classes?,
            });
        }
        let (Some(input), Some(channels)) = (&m.input, &m.conv_channels) else {
            self.problem(
                format!(
                    "{at}.{}",
                    if m.input.is_none() {
                        "input"
                    } else {
                        "conv_channels"
                    }
                ),
                m.arch.span(),
                "a `cnn` needs `input` ([height, width, channels]) and `conv_channels`",
                Some("for 28x28 greyscale images: input = [28, 28, 1], conv_channels = [32, 64]"),
            );
            return None;
        };
        let input_v = self.counts(&format!("{at}.input"), input, 1, false);
        if input.get_ref().len() != 3 {
            self.problem(
                format!("{at}.input"),
                input.span(),
                format!(
                    "needs 3 values [height, width, channels], got {}",
                    input.get_ref().len()
                ),
                Some("as in `input = [28, 28, 1]`"),
            );
            return None;
        }
        let conv_channels = self.counts(&format!("{at}.conv_channels"), channels, 1, false)?;
        let kernel = match &m.kernel {
            Some(k) => self.count(&format!("{at}.kernel"), k, 1)?,
            None => 3,
        };
        let padding = match m.padding.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
            None | Some(("valid", _)) => Padding::Valid,
            Some(("same", span)) => {
                if kernel % 2 == 0 {
                    self.problem(
                        format!("{at}.padding"),
                        span,
                        format!("`same` padding needs an odd kernel, got {kernel}"),
                        Some("use kernel = 3 or 5, or padding = \"valid\""),
                    );
                }
                Padding::Same
            }
            Some((other, span)) => {
                self.problem(
                    format!("{at}.padding"),
                    span,
                    format!("unknown padding `{other}`"),
                    Some("use \"valid\" or \"same\""),
                );
                return None;
            }
        };
        let pool = match &m.pool {
            Some(p) => self.count(&format!("{at}.pool"), p, 1)?,
            None => 2,
        };
        let pool_after = match &m.pool_after {
            None => vec![true; conv_channels.len()],
            Some(list) => {
                let after = self.counts(&format!("{at}.pool_after"), list, 1, true)?;
                if let Some(&bad) = after.iter().find(|&&i| i > conv_channels.len()) {
                    let hint = format!(
                        "entries are 1-based convolution numbers, 1 to {}",
                        conv_channels.len()
                    );
                    self.problem(
                        format!("{at}.pool_after"),
                        list.span(),
                        format!("there is no convolution {bad}"),
                        Some(&hint),
                    );
                    return None;
                }
                (1..=conv_channels.len())
                    .map(|i| after.contains(&i))
                    .collect()
            }
        };
        let dense = match &m.dense {
            Some(d) => self.counts(&format!("{at}.dense"), d, 1, true)?,
            None => Vec::new(),
        };
        let input_v = input_v?;
        let arch = Architecture::Cnn {
            input_hwc: [input_v[0], input_v[1], input_v[2]],
            conv_channels,
            pool_after,
            kernel,
            padding,
            pool,
            dense,
            classes: classes?,
        };
        if let Err(i) = arch.conv_output_sizes() {
            self.problem(
                format!("{at}.conv_channels[{i}]"),
                channels.span(),
                format!("the image is too small for convolution {}: its output would be empty", i + 1),
                Some("use a larger `input`, fewer convolutions, a smaller `kernel` or `pool`, or padding = \"same\""),
            );
            return None;
        }
        Some(arch)
    }

    /// A `bert` from a model folder: `dir` (config.json, model.safetensors, tokenizer.json,
    /// each checked here) and `seq_len`.
    fn bert_architecture(&mut self, at: &str, m: &ModelEntry) -> Option<Architecture> {
        let others = [
            ("classes", m.classes.is_some()),
            ("input_size", m.input_size.is_some()),
            ("hidden", m.hidden.is_some()),
            ("input", m.input.is_some()),
            ("conv_channels", m.conv_channels.is_some()),
            ("pool_after", m.pool_after.is_some()),
            ("kernel", m.kernel.is_some()),
            ("padding", m.padding.is_some()),
            ("pool", m.pool.is_some()),
            ("dense", m.dense.is_some()),
            ("raw_input", m.raw_input.is_some()),
            ("weights", m.weights.is_some()),
        ];
        let mut ok = true;
        for (field, present) in others {
            if present {
                let hint = if field == "weights" {
                    "a bert's weights are `dir`/model.safetensors; remove `weights`"
                } else {
                    "remove it, or change `arch`"
                };
                self.problem(
                    format!("{at}.{field}"),
                    m.arch.span(),
                    format!("`{field}` does not apply to arch `bert`"),
                    Some(hint),
                );
                ok = false;
            }
        }
        if let Some(t) = &m.train {
            self.problem(
                format!("{at}.train"),
                t.span(),
                "training a `bert` is not supported",
                Some("remove `train`; bert variants are made by `quantize` and `prune`"),
            );
            ok = false;
        }
        let seq_len = match &m.seq_len {
            None => Some(128),
            Some(v) => self.count(&format!("{at}.seq_len"), v, 2),
        };
        const FETCH: &str = "for all-MiniLM-L6-v2 run scripts/fetch-minilm.sh (it prints the folder); paths are relative to the suite file";
        let Some(d) = &m.dir else {
            self.problem(
                format!("{at}.dir"),
                m.arch.span(),
                "a `bert` needs `dir`, a folder with config.json, model.safetensors and tokenizer.json",
                Some(FETCH),
            );
            return None;
        };
        let dir = self.base.join(d.get_ref());
        if !dir.is_dir() {
            self.problem(
                format!("{at}.dir"),
                d.span(),
                format!("model folder {} does not exist", dir.display()),
                Some(FETCH),
            );
            return None;
        }
        let missing: Vec<&str> = ["config.json", "model.safetensors", "tokenizer.json"]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            self.problem(
                format!("{at}.dir"),
                d.span(),
                format!(
                    "model folder {} lacks {}",
                    dir.display(),
                    missing.join(", ")
                ),
                Some(FETCH),
            );
            return None;
        }
        let seq_len = seq_len?;
        if !ok {
            return None;
        }
        let arch = match model::bert::architecture_from_dir(&dir, seq_len) {
            Ok(a) => a,
            Err(e) => {
                let span = match (&m.seq_len, e.to_string().contains("seq_len")) {
                    (Some(v), true) => v.span(),
                    _ => d.span(),
                };
                let field = if span == d.span() { "dir" } else { "seq_len" };
                self.problem(
                    format!("{at}.{field}"),
                    span,
                    e.to_string(),
                    Some("the folder must hold a BERT config.json (hidden_act \"gelu\"); seq_len at most max_position_embeddings"),
                );
                return None;
            }
        };
        if let Err(e) = model::check_weights_file(&arch, &dir.join("model.safetensors")) {
            self.problem(
                format!("{at}.dir"),
                d.span(),
                e.to_string(),
                Some(
                    "model.safetensors must hold the BERT's tensors as config.json describes them",
                ),
            );
            return None;
        }
        if let Err(e) = model::bert::TextEncoder::from_file(&dir.join("tokenizer.json"), seq_len) {
            self.problem(
                format!("{at}.dir"),
                d.span(),
                e.to_string(),
                Some("tokenizer.json must be a HuggingFace tokenizers file"),
            );
            return None;
        }
        Some(arch)
    }

    fn weights_file(
        &mut self,
        field: &str,
        p: &Spanned<String>,
        arch: &Architecture,
    ) -> Option<PathBuf> {
        let path = self.base.join(p.get_ref());
        if !path.is_file() {
            self.problem(
                field,
                p.span(),
                format!("weights file {} does not exist", path.display()),
                Some("paths are relative to the suite file; remove `weights` to use seeded random weights"),
            );
            return None;
        }
        if let Err(e) = model::check_weights_file(arch, &path) {
            self.problem(field, p.span(), e.to_string(), Some("the file must hold the architecture's tensors by name and shape (README: weights layout)"));
            return None;
        }
        Some(path)
    }

    fn targets(&mut self, targets: &Spanned<Vec<Spanned<TargetEntry>>>) -> Vec<Target> {
        if targets.get_ref().is_empty() {
            self.problem(
                "targets",
                targets.span(),
                "no targets",
                Some("add [[targets]] with device = \"cpu\""),
            );
        }
        let mut out: Vec<Target> = Vec::new();
        for (i, t) in targets.get_ref().iter().enumerate() {
            let at = format!("targets[{i}]");
            let t = t.get_ref();
            let device = match t.device.get_ref().parse::<DeviceKind>() {
                Ok(d) => d,
                Err(msg) => {
                    self.problem(
                        format!("{at}.device"),
                        t.device.span(),
                        msg,
                        Some("devices are `cpu` or `cuda:N` (N = 0, 1, ...)"),
                    );
                    continue;
                }
            };
            let name = match &t.name {
                Some(n) if !valid_name(n.get_ref()) => {
                    self.problem(
                        format!("{at}.name"),
                        n.span(),
                        format!("`{}` is not a valid name", n.get_ref()),
                        Some(NAME_HINT),
                    );
                    continue;
                }
                Some(n) => Some(n.get_ref().as_str()),
                None => None,
            };
            let threads = match &t.threads {
                Some(list) => match self.counts(&format!("{at}.threads"), list, 1, false) {
                    Some(v) => v,
                    None => continue,
                },
                None => vec![1],
            };
            let cores = match &t.cores {
                None => None,
                Some(list) => {
                    let Some(mut cores) = self.counts(&format!("{at}.cores"), list, 0, false)
                    else {
                        continue;
                    };
                    cores.sort_unstable();
                    cores.dedup();
                    let available = crate::target::available_cores();
                    if let Some(bad) = cores.iter().find(|c| !available.contains(c)) {
                        let hint = format!("cores this process may use here: {available:?}");
                        self.problem(
                            format!("{at}.cores"),
                            list.span(),
                            format!("core {bad} does not exist or is not available"),
                            Some(&hint),
                        );
                        continue;
                    }
                    Some(cores)
                }
            };
            let max_rss_mb = match &t.max_rss_mb {
                None => None,
                Some(v) => match self.count(&format!("{at}.max_rss_mb"), v, 1) {
                    Some(mb) => Some(mb as u64),
                    None => continue,
                },
            };
            for n in threads {
                let mut target = Target::new(name, device, n);
                target.cores = cores.clone();
                target.max_rss_mb = max_rss_mb;
                if out.iter().any(|o| o.label == target.label) {
                    self.problem(
                        format!("{at}.threads"),
                        t.device.span(),
                        format!("target `{}` appears twice", target.label),
                        Some("give targets distinct names or thread counts"),
                    );
                    continue;
                }
                out.push(target);
            }
        }
        out
    }

    fn scenarios(&mut self, s: &Spanned<ScenariosEntry>) -> Vec<(Scenario, Vec<usize>)> {
        let mut out = Vec::new();
        if s.get_ref().single_stream.is_some() {
            out.push((Scenario::SingleStream, vec![1]));
        }
        if let Some(off) = &s.get_ref().offline {
            if let Some(mut b) =
                self.counts("scenarios.offline.batch_sizes", &off.batch_sizes, 1, false)
            {
                // Repeated sizes would give repeated case ids.
                let mut seen = BTreeSet::new();
                b.retain(|x| seen.insert(*x));
                out.push((Scenario::Offline, b));
            }
        }
        let e = s.get_ref();
        if e.single_stream.is_none()
            && e.offline.is_none()
            && e.server.is_none()
            && e.multi_stream.is_none()
        {
            self.problem(
                "scenarios",
                s.span(),
                "no scenario",
                Some("add [scenarios.single_stream], [scenarios.offline] with batch_sizes = [1, 8], [scenarios.server] or [scenarios.multi_stream]"),
            );
        }
        out
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
mod tests {
    use super::*;

    const GOOD: &str = r#"
[suite]
name = "t"

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
threads = [1, 2]

[scenarios.single_stream]
[scenarios.offline]
batch_sizes = [1, 8]
"#;

    fn problems(text: &str) -> Vec<Problem> {
        match parse(Path::new("suites/x.toml"), text) {
            Err(SuiteError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn resolves_a_good_suite() {
        let s = parse(Path::new("suites/t.toml"), GOOD).unwrap();
        assert_eq!(s.models.len(), 2);
        assert_eq!(
            s.variants.iter().map(|v| v.id()).collect::<Vec<_>>(),
            ["cnn-baseline", "mlp-baseline"]
        );
        assert_eq!(
            s.targets
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>(),
            ["cpu-t1", "cpu-t2"]
        );
        assert_eq!(
            s.scenarios,
            vec![
                (Scenario::SingleStream, vec![1]),
                (Scenario::Offline, vec![1, 8])
            ]
        );
        assert_eq!(s.settings, Settings::default());
        assert_eq!(s.models[0].arch.param_count(), 121_930);
    }

    #[test]
    fn misspelt_field_gets_a_suggestion_and_a_location() {
        let text = GOOD.replace("threads = [1, 2]", "thread = [1, 2]");
        let p = &problems(&text)[0];
        assert!(p.message.contains("unknown field `thread`"), "{p}");
        assert_eq!(p.hint.as_deref(), Some("did you mean `threads`?"));
        assert_eq!(p.field, "targets[0].thread");
        let line = GOOD.lines().position(|l| l.starts_with("threads")).unwrap() + 1;
        assert_eq!(p.line, Some(line), "{p}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let text = GOOD
            .replace("threads = [1, 2]", "threads = []")
            .replace("batch_sizes = [1, 8]", "batch_sizes = [0]");
        let ps = problems(&text);
        let fields: Vec<_> = ps.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["targets[0].threads", "scenarios.offline.batch_sizes[0]"],
            "{ps:?}"
        );
        assert!(ps.iter().all(|p| p.line.is_some() && p.hint.is_some()));
    }

    const VARIANTS: &str = r#"
[suite]
name = "v"

[data]
source = "digits"
resize = "bilinear"

[[models]]
name = "cnn"
arch = "cnn"
input = [28, 28, 1]
conv_channels = [32, 64]
dense = [64]
classes = 10
train = { epochs = 2, seed = 5 }

[[variants]]
name = "baseline"
model = "cnn"

[[variants]]
name = "q4"
model = "cnn"
source = "quantize"
from = "half"
dtype = "q4_0"

[[variants]]
name = "half"
model = "cnn"
source = "prune"
method = "structured"
sparsity = 0.5

[[variants]]
name = "student"
model = "cnn"
source = "distill"
teacher = "baseline"
student = { conv_channels = [8, 16], dense = [32] }
train = { epochs = 3, optimizer = "sgd", lr = 0.05 }

[[variants]]
name = "small"
model = "cnn"
source = "compress"
arch = { conv_channels = [16, 16, 32], pool_after = [2, 3], padding = "same", dense = [32] }
train = { epochs = 1 }

[[targets]]
device = "cpu"

[scenarios.single_stream]
"#;

    #[test]
    fn resolves_recipes_architectures_and_the_distill_twin() {
        use crate::suite::recipe::*;
        let s = parse(Path::new("suites/v.toml"), VARIANTS).unwrap();
        let names: Vec<_> = s.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "q4",
                "half",
                "student",
                "student_no_teacher",
                "small"
            ]
        );
        let data = s.data.as_ref().unwrap();
        assert_eq!(
            (data.scale, data.test_fraction, data.resize),
            (16.0, 0.2, crate::data::Resize::Bilinear)
        );
        let train = s.models[0].train.as_ref().unwrap();
        assert_eq!((train.epochs, train.batch_size, train.seed), (2, 32, 5));
        assert_eq!(train.optimizer, OptimizerKind::Adamw);
        // Every variant is built by `run`: even the baseline, which is trained.
        assert!(s
            .variants
            .iter()
            .all(|v| matches!(v.weights, WeightSource::Unbuilt { .. })));
        let arch = |name: &str| &s.variants.iter().find(|v| v.name == name).unwrap().arch;
        let base = &s.models[0].arch;
        // Structured pruning halves every layer; quantizing it keeps that architecture.
        assert_eq!(arch("half"), &base.structured(0.5));
        assert_eq!(arch("q4"), arch("half"));
        assert!(arch("half").param_count() < base.param_count() / 2);
        // The student and its twin share the student's architecture and recipe.
        assert_eq!(arch("student"), arch("student_no_teacher"));
        let Recipe::Distill {
            temperature,
            alpha,
            train,
            ..
        } = &s.variants[3].recipe
        else {
            panic!("{:?}", s.variants[3].recipe)
        };
        assert_eq!((*temperature, *alpha), (4.0, 0.7));
        assert_eq!(
            (train.optimizer, train.lr, train.seed),
            (OptimizerKind::Sgd, 0.05, 42)
        );
        assert_eq!(
            s.variants[4].recipe,
            Recipe::Compress {
                train: train.clone(),
                twin_of: Some("student".into())
            }
        );
        // The guide's compressed architecture.
        let Architecture::Cnn {
            conv_channels,
            pool_after,
            padding,
            dense,
            ..
        } = arch("small")
        else {
            panic!()
        };
        assert_eq!(conv_channels, &vec![16, 16, 32]);
        assert_eq!(pool_after, &vec![false, true, true]);
        assert_eq!((padding, dense), (&Padding::Same, &vec![32]));
    }

    #[test]
    fn recipe_problems_are_all_reported_with_locations() {
        let text = VARIANTS
            .replace("dtype = \"q4_0\"", "dtype = \"int4\"")
            .replace("sparsity = 0.5", "sparsity = 0")
            .replace("teacher = \"baseline\"", "teacher = \"student\"");
        let ps = problems(&text);
        let fields: Vec<_> = ps.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "variants[1].dtype",
                "variants[2].sparsity",
                "variants[3].teacher"
            ],
            "{ps:?}"
        );
        assert!(
            ps[2].message.contains("cannot be made from itself"),
            "{}",
            ps[2]
        );
        assert!(ps.iter().all(|p| p.line.is_some() && p.hint.is_some()));
        // Without [data], training recipes say what they miss.
        let start = VARIANTS.find("[data]").unwrap();
        let end = VARIANTS.find("[[models]]").unwrap();
        let no_data = format!("{}{}", &VARIANTS[..start], &VARIANTS[end..]);
        let ps = problems(&no_data);
        let fields: Vec<_> = ps.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["models[0].train", "variants[3].train", "variants[4].train"],
            "{ps:?}"
        );
    }
}
