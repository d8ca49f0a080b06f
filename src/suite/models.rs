//! The `[[models]]` tables: the fields every entry shares (name, arch, weights, raw inputs,
//! training) read here; the rest handed to the entry's kind (`model::kinds`), which checks its
//! own fields and makes the architecture.

use toml::de::DeValue;

use super::*;
use crate::model::kinds::unknown_kind_hint;
use crate::model::{entry, DataKind, Entry, EntryContext, KindInfo, Parsed, RecipeKind, Registry};

/// What a model's variants need from its entry: the kind's own fields (to apply a variant's
/// changes to) and where its `arch` is.
pub(super) struct ModelFields<'i> {
    pub own: Entry<'i>,
    pub arch_span: std::ops::Range<usize>,
}

impl Validator {
    /// Each model is scored on the data its kind takes: sentences, or labelled samples.
    pub(super) fn text_and_models(
        &mut self,
        raw: &SuiteFile,
        models: &[ModelDef],
        data: Option<&crate::data::DataSpec>,
    ) {
        let text = data.map(|d| d.source.is_text());
        let sentence_kinds: Vec<String> = Architecture::KINDS
            .iter()
            .filter(|k| k.data == DataKind::Sentences)
            .map(|k| format!("`{}`", k.name))
            .collect();
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
            let info = m.arch.info();
            match (info.data, text) {
                (DataKind::Sentences, Some(false)) => self.problem(
                    format!("models[{i}].arch"),
                    span,
                    format!("{} is scored on sentences, and the suite's [data] holds labelled samples", info.a()),
                    Some(&format!("use [data] with source = \"sentences\", or put the {} in a suite of its own", info.name)),
                ),
                (DataKind::Samples, Some(true)) => self.problem(
                    format!("models[{i}].arch"),
                    span,
                    format!("{} cannot be scored on sentences ([data] source = \"sentences\")", info.a()),
                    Some(&format!("sentences are for {} models; put the others in a suite of their own", sentence_kinds.join(", "))),
                ),
                (DataKind::Tokens, Some(_)) => self.problem(
                    format!("models[{i}].arch"),
                    span,
                    format!("{} is scored on the token ids its own entry names (`quality`), not on [data]", info.a()),
                    Some(&format!("remove [data], or put the {} in a suite of its own", info.name)),
                ),
                _ => {}
            }
        }
    }

    /// `raw_input`: the shape of inputs before preprocessing, as the kind takes them.
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
        if let Err(hint) = arch.kind().check_raw_input(&dims) {
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

    /// Every `[[models]]` entry, with the kind's own fields of each (for the variants that
    /// change them).
    pub(super) fn models<'i>(
        &mut self,
        models: &Spanned<Vec<Spanned<ModelEntry>>>,
        tables: &[Spanned<DeValue<'i>>],
        default_seed: u64,
        data: Option<&crate::data::Dataset>,
        data_declared: bool,
    ) -> (Vec<ModelDef>, Vec<ModelFields<'i>>) {
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
        let mut entries = Vec::new();
        for (i, (m, table)) in models.get_ref().iter().zip(tables).enumerate() {
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
            let Some((parsed, entry)) = self.architecture(&at, m, table) else {
                continue;
            };
            let info = parsed.spec.info();
            let refused = |field: &str| info.refused.iter().any(|(f, _)| *f == field);
            let arch = parsed.spec;
            let weights = match (parsed.weights, &m.weights) {
                (Some(w), _) => w,
                (None, None) => WeightSource::Seeded {
                    seed: m.seed.unwrap_or(default_seed),
                },
                (None, Some(p)) => match self.weights_file(&format!("{at}.weights"), p, &arch) {
                    Some(path) => WeightSource::file(path),
                    None => continue,
                },
            };
            if let Some(Err(e)) = data.map(|ds| arch.kind().check_dataset(ds)) {
                let (field, span) = match e.field {
                    Some(f) => (f, entry.value_span(f)),
                    None => ("arch", None),
                };
                self.problem(
                    format!("{at}.{field}"),
                    span.unwrap_or(m.arch.span()),
                    e.message,
                    Some("every model is scored on the suite's [data]: match its input, or set `resize` in [data] (\"bilinear\", \"nearest\" or \"pad\")"),
                );
            }
            let train = match &m.train {
                Some(t) if info.accepts(RecipeKind::Train) => {
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
                _ => None,
            };
            let raw_input = if refused("raw_input") {
                None
            } else {
                let Some(raw_input) = self.raw_input(&at, m, &arch) else {
                    continue;
                };
                raw_input
            };
            out.push(ModelDef {
                name,
                arch,
                weights,
                raw_input,
                train,
                tokenizer: parsed.tokenizer,
            });
            entries.push(ModelFields {
                own: entry,
                arch_span: m.arch.span(),
            });
        }
        (out, entries)
    }

    /// The entry's kind, its problems with the shared fields, and its own fields parsed by
    /// the kind; with the kind's fields of the entry (those of other kinds removed).
    fn architecture<'i>(
        &mut self,
        at: &str,
        m: &ModelEntry,
        table: &Spanned<DeValue<'i>>,
    ) -> Option<(Parsed<Architecture>, Entry<'i>)> {
        let name = m.arch.get_ref().as_str();
        let Some(info) = Architecture::info_of(name) else {
            self.problem(
                format!("{at}.arch"),
                m.arch.span(),
                format!("unknown architecture `{name}`"),
                Some(&unknown_kind_hint(Architecture::KINDS, name)),
            );
            return None;
        };
        let mut own = Entry::of(table)?.without(MODEL_FIELDS);
        let expected = expected_fields(info);
        let mut cx = EntryContext {
            checker: &mut self.checker,
            at: at.to_string(),
            arch_span: m.arch.span(),
            base: &self.base,
        };
        entry::keep_own_fields(&mut own, info, Architecture::KINDS, &expected, &mut cx);
        let present = [
            ("raw_input", m.raw_input.is_some()),
            ("weights", m.weights.is_some()),
        ];
        for (field, hint) in info.refused {
            if present.iter().any(|(f, p)| f == field && *p) {
                let field_path = cx.field(field);
                cx.problem(
                    field_path,
                    m.arch.span(),
                    format!("`{field}` does not apply to arch `{name}`"),
                    Some(hint),
                );
            }
        }
        if let (Some(t), false) = (&m.train, info.accepts(RecipeKind::Train)) {
            let made_by: Vec<String> = info
                .recipe_sources()
                .iter()
                .map(|s| format!("`{s}`"))
                .collect();
            let field = cx.field("train");
            cx.problem(
                field,
                t.span(),
                format!("training {} is not supported", info.a()),
                Some(&format!(
                    "remove `train`; {name} variants are made by {}",
                    crate::model::kind::and_list(&made_by)
                )),
            );
        }
        let parsed = Architecture::parse(name, &own, &mut cx)??;
        Some((parsed, own))
    }

    pub(super) fn weights_file(
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
        if let Err(e) = model::check_weights_file(arch.kind(), &path) {
            // A kind whose file is a format of its own (an llm's GGUF) names what is wrong
            // with it in `e`; the tensor layout does not apply to it.
            let hint = if arch.kind().file_architecture(&path).is_some() {
                format!(
                    "the file must be one {} runs, in the format of its model's own file",
                    arch.info().a()
                )
            } else {
                "the file must hold the architecture's tensors by name and shape (docs/models.md, \"Weights layout\")".to_string()
            };
            self.problem(field, p.span(), e.to_string(), Some(&hint));
            return None;
        }
        Some(path)
    }
}

/// The fields an entry of `kind` may have, for the message about an unknown one: the
/// shared ones it takes and its own.
fn expected_fields(kind: &KindInfo) -> Vec<&'static str> {
    let takes = |f: &&&str| {
        !kind.refused.iter().any(|(r, _)| r == *f)
            && (**f != "train" || kind.accepts(RecipeKind::Train))
    };
    let (head, tail) = MODEL_FIELDS.split_at(2);
    head.iter()
        .chain(kind.fields)
        .chain(tail.iter().filter(takes))
        .copied()
        .collect()
}
