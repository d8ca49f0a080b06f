//! One `[[variants]]` entry: every field checked for its source (and for what the model's
//! kind accepts), the `train` recipes, and the architecture a `compress` or `distill`
//! variant changes, made by the kind.

use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use super::models::ModelFields;
use super::recipe::*;
use super::schema::*;
use super::variants::{baseline_weights, Partial};
use super::{ModelDef, Validator};
use crate::model::{
    entry, Architecture, Entry, EntryContext, KindInfo, RecipeKind, Registry, WeightSource,
};

const SOURCES: &str =
    "\"baseline\", \"file\", \"quantize\", \"prune\", \"distill\" or \"compress\"";
const DATA_HINT: &str = "add a [data] table, as in `[data]` with `source = \"digits\"` (the built-in UCI digits) and `resize = \"bilinear\"`";

impl Validator {
    pub(super) fn train_spec(
        &mut self,
        at: &str,
        t: &Spanned<TrainEntry>,
        default_seed: u64,
    ) -> Option<TrainSpec> {
        let t = t.get_ref();
        let epochs = self.count(&format!("{at}.epochs"), &t.epochs, 1);
        let batch_size = match &t.batch_size {
            Some(b) => self.count(&format!("{at}.batch_size"), b, 1),
            None => Some(32),
        };
        let optimizer = match &t.optimizer {
            None => Some(OptimizerKind::Adamw),
            Some(o) => match self.word(&format!("{at}.optimizer"), o, &["adamw", "sgd"]) {
                Some("sgd") => Some(OptimizerKind::Sgd),
                Some(_) => Some(OptimizerKind::Adamw),
                None => None,
            },
        };
        let lr = match &t.lr {
            Some(v) => self.positive(&format!("{at}.lr"), v, "a learning rate, as in lr = 0.001"),
            None => Some(match optimizer {
                Some(OptimizerKind::Sgd) => 0.01,
                _ => 0.001,
            }),
        };
        let weight_decay = match &t.weight_decay {
            Some(v) if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) => {
                self.problem(
                    format!("{at}.weight_decay"),
                    v.span(),
                    format!("must be zero or more, got {}", v.get_ref()),
                    Some("as in weight_decay = 0.01"),
                );
                None
            }
            Some(v) => {
                if optimizer == Some(OptimizerKind::Sgd) && *v.get_ref() != 0.0 {
                    self.problem(
                        format!("{at}.weight_decay"),
                        v.span(),
                        "weight decay applies to `adamw` only (candle's SGD has none)",
                        Some("remove it, or use optimizer = \"adamw\""),
                    );
                    None
                } else {
                    Some(*v.get_ref())
                }
            }
            None => Some(0.0),
        };
        Some(TrainSpec {
            epochs: epochs?,
            batch_size: batch_size?,
            optimizer: optimizer?,
            lr: lr?,
            weight_decay: weight_decay?,
            seed: t.seed.unwrap_or(default_seed),
        })
    }

    fn needs_data(&mut self, field: String, span: Range<usize>, what: &str, data: bool) -> bool {
        if !data {
            self.problem(
                field,
                span,
                format!("{what} needs training data, and the suite has no [data] table"),
                Some(DATA_HINT),
            );
        }
        data
    }

    /// The model's architecture with a variant's `changes` (`arch = {...}` or `student =
    /// {...}`, at `at`) applied by its kind.
    fn arch_override(
        &mut self,
        at: &str,
        model: &ModelDef,
        fields: &ModelFields<'_>,
        changes: Option<&Spanned<DeValue<'_>>>,
    ) -> Option<Architecture> {
        let mut changes = Entry::of(changes?)?;
        let info = model.arch.info();
        let mut cx = EntryContext {
            checker: &mut self.checker,
            at: at.to_string(),
            arch_span: fields.arch_span.clone(),
            base: &self.base,
        };
        if !entry::keep_overridable(&mut changes, info, Architecture::KINDS, &mut cx) {
            return None;
        }
        let mut merged = fields.own.clone();
        Architecture::merge_override(info.name, &mut merged, &changes);
        Architecture::parse(info.name, &merged, &mut cx)?.map(|p| p.spec)
    }

    /// Checks one entry's fields for its source and builds its recipe.
    pub(super) fn variant_entry(
        &mut self,
        at: &str,
        v: &VariantEntry,
        (model, own): (&ModelDef, &ModelFields<'_>),
        table: &Spanned<DeValue<'_>>,
        has_data: bool,
        default_seed: u64,
    ) -> Option<Partial> {
        let source_span = v.source.as_ref().map(|s| s.span()).unwrap_or(v.name.span());
        let source = match &v.source {
            Some(s) => self.word(
                &format!("{at}.source"),
                s,
                &[
                    "baseline", "file", "quantize", "prune", "distill", "compress",
                ],
            )?,
            None if v.path.is_some() => "file",
            None => "baseline",
        };
        let info = model.arch.info();
        if let Some((field, span, message)) = refused_recipe(info, source, v, &source_span) {
            self.problem(
                format!("{at}.{field}"),
                span,
                message,
                Some(&info.variants_hint()),
            );
            return None;
        }
        if !self.fields_apply(at, v, source) {
            return None;
        }
        let e = EntryAt {
            at,
            v,
            model,
            own,
            table,
            source,
            source_span,
            has_data,
            default_seed,
        };
        let made = match source {
            "baseline" => Made {
                weights: Some(baseline_weights(
                    model,
                    &format!("{}-{}", model.name, v.name.get_ref()),
                )),
                ..Made::of(Recipe::Baseline)
            },
            "file" => self.file_recipe(&e)?,
            "quantize" => self.quantize_recipe(&e)?,
            "prune" => self.prune_recipe(&e)?,
            "distill" => self.distill_recipe(&e)?,
            _ => self.compress_recipe(&e)?,
        };
        Some(Partial {
            at: at.to_string(),
            name: String::new(),
            name_span: v.name.span(),
            model: model.name.clone(),
            recipe: made.recipe,
            dep: made.dep,
            own_arch: made.own_arch,
            weights: made.weights,
        })
    }

    /// Every field the entry sets must apply to its source; each one that does not is a
    /// problem. True when all apply.
    fn fields_apply(&mut self, at: &str, v: &VariantEntry, source: &str) -> bool {
        let present: [(&str, Option<Range<usize>>); 12] = [
            ("path", v.path.as_ref().map(|x| x.span())),
            ("from", v.from.as_ref().map(|x| x.span())),
            ("dtype", v.dtype.as_ref().map(|x| x.span())),
            ("method", v.method.as_ref().map(|x| x.span())),
            ("sparsity", v.sparsity.as_ref().map(|x| x.span())),
            ("scope", v.scope.as_ref().map(|x| x.span())),
            ("finetune", v.finetune.as_ref().map(|x| x.span())),
            ("teacher", v.teacher.as_ref().map(|x| x.span())),
            ("student", v.student.as_ref().map(|x| x.span())),
            ("temperature", v.temperature.as_ref().map(|x| x.span())),
            ("alpha", v.alpha.as_ref().map(|x| x.span())),
            ("train", v.train.as_ref().map(|x| x.span())),
        ];
        let allowed: &[&str] = match source {
            "baseline" => &[],
            "file" => &["path"],
            "quantize" => &["from", "dtype"],
            "prune" => &["from", "method", "sparsity", "scope", "finetune"],
            "distill" => &["teacher", "student", "temperature", "alpha", "train"],
            _ => &["train"],
        };
        let mut fields_ok = true;
        let arch_field = ("arch", v.arch.as_ref().map(|x| x.span()));
        for (field, span) in present.into_iter().chain([arch_field]) {
            let ok = allowed.contains(&field) || (field == "arch" && source == "compress");
            if let (Some(span), false) = (span, ok) {
                let hint = if source == "baseline" && field == "path" {
                    "remove `path`, or set source = \"file\"".to_string()
                } else {
                    format!("remove it, or change `source` ({SOURCES})")
                };
                self.problem(
                    format!("{at}.{field}"),
                    span,
                    format!("`{field}` does not apply to a `{source}` variant"),
                    Some(&hint),
                );
                fields_ok = false;
            }
        }
        fields_ok
    }

    /// A field the entry's source needs is missing.
    fn required(&mut self, e: &EntryAt<'_>, field: &str, example: &str) {
        let source = e.source;
        self.problem(
            e.field(field),
            e.source_span.clone(),
            format!("a `{source}` variant needs `{field}`"),
            Some(&format!("add `{example}`")),
        );
    }

    fn file_recipe(&mut self, e: &EntryAt<'_>) -> Option<Made> {
        let Some(p) = &e.v.path else {
            self.required(e, "path", "path = \"weights.safetensors\"");
            return None;
        };
        let mut own_arch = None;
        let file = self.base.join(p.get_ref());
        let path = match e.model.arch.kind().file_variant(&file) {
            // The file holds the model itself (an ONNX graph): the variant's own.
            Some(Ok(arch)) => {
                own_arch = Some(arch);
                file
            }
            Some(Err(message)) => {
                let hint = format!("a `file` variant of {} is the same model exported again; paths are relative to the suite file", e.model.arch.info().a());
                self.problem(e.field("path"), p.span(), message, Some(&hint));
                return None;
            }
            None => self.weights_file(&e.field("path"), p, &e.model.arch)?,
        };
        Some(Made {
            // A kind whose file fixes the architecture (an llm's GGUF) takes the file's.
            own_arch: own_arch.or_else(|| {
                e.model
                    .arch
                    .kind()
                    .file_architecture(&path)
                    .and_then(Result::ok)
            }),
            weights: Some(WeightSource::file(path.clone())),
            ..Made::of(Recipe::File { path })
        })
    }

    fn quantize_recipe(&mut self, e: &EntryAt<'_>) -> Option<Made> {
        let Some(d) = &e.v.dtype else {
            self.required(e, "dtype", "dtype = \"q8_0\"");
            return None;
        };
        let names: Vec<&str> = match e.model.arch.kind().quantize_dtypes() {
            Some(own) => own.to_vec(),
            None => QuantDtype::ALL.iter().map(|d| d.as_str()).collect(),
        };
        let dtype = self.word(&e.field("dtype"), d, &names)?;
        let (from, dep) = e.made_from();
        Some(Made {
            dep: Some(dep),
            ..Made::of(Recipe::Quantize {
                from,
                dtype: dtype
                    .parse()
                    .expect("the kinds' dtypes are QuantDtype names"),
            })
        })
    }

    fn prune_recipe(&mut self, e: &EntryAt<'_>) -> Option<Made> {
        let v = e.v;
        let method = match &v.method {
            None => Some(PruneMethod::Magnitude),
            Some(m) => match self.word(&e.field("method"), m, &["magnitude", "structured"]) {
                Some("structured") => Some(PruneMethod::Structured),
                Some(_) => Some(PruneMethod::Magnitude),
                None => None,
            },
        };
        let sparsity = match &v.sparsity {
            None => {
                self.required(e, "sparsity", "sparsity = 0.5");
                None
            }
            Some(s) => self.fraction(
                &e.field("sparsity"),
                s,
                false,
                "the fraction of weights (or channels) removed, as in 0.5 for 50%",
            ),
        };
        let scope = match &v.scope {
            None => Some(PruneScope::Layer),
            Some(s) => match self.word(&e.field("scope"), s, &["layer", "global"]) {
                Some("global") if method == Some(PruneMethod::Structured) => {
                    self.problem(
                        e.field("scope"),
                        s.span(),
                        "structured pruning removes the same share of every layer; `scope = \"global\"` applies to magnitude pruning",
                        Some("remove `scope`, or use method = \"magnitude\""),
                    );
                    None
                }
                Some("global") => Some(PruneScope::Global),
                Some(_) => Some(PruneScope::Layer),
                None => None,
            },
        };
        let finetune = match &v.finetune {
            None => Some(None),
            Some(t) => {
                let spec = self.train_spec(&e.field("finetune"), t, e.default_seed);
                if !self.needs_data(e.field("finetune"), t.span(), "fine-tuning", e.has_data) {
                    return None;
                }
                spec.map(Some)
            }
        };
        let (from, dep) = e.made_from();
        Some(Made {
            dep: Some(dep),
            ..Made::of(Recipe::Prune {
                from,
                method: method?,
                sparsity: sparsity?,
                scope: scope?,
                finetune: finetune?,
            })
        })
    }

    fn distill_recipe(&mut self, e: &EntryAt<'_>) -> Option<Made> {
        let v = e.v;
        let teacher = e.dep_of(&v.teacher, "teacher");
        if teacher.is_none() {
            self.required(e, "teacher", "teacher = \"baseline\"");
        }
        let student = match &v.student {
            None => {
                self.required(
                    e,
                    "student",
                    "student = { conv_channels = [8, 16], dense = [32] }",
                );
                None
            }
            Some(_) => {
                let changes = e.table.get_ref().get("student");
                self.arch_override(&e.field("student"), e.model, e.own, changes)
            }
        };
        let temperature = match &v.temperature {
            None => Some(4.0),
            Some(t) => self.positive(&e.field("temperature"), t, "as in temperature = 4.0"),
        };
        let alpha = match &v.alpha {
            None => Some(0.7),
            Some(a) => {
                let x = *a.get_ref();
                if (0.0..=1.0).contains(&x) {
                    Some(x)
                } else {
                    self.problem(
                        e.field("alpha"),
                        a.span(),
                        format!("must be between 0 and 1, got {x}"),
                        Some("alpha weights the soft-target loss, 1 - alpha the hard labels; as in alpha = 0.7"),
                    );
                    None
                }
            }
        };
        let train = self.recipe_train(e);
        let (teacher, field, span) = teacher?;
        Some(Made {
            dep: Some((field, span)),
            own_arch: Some(student?),
            ..Made::of(Recipe::Distill {
                teacher,
                temperature: temperature?,
                alpha: alpha?,
                train: train?,
            })
        })
    }

    fn compress_recipe(&mut self, e: &EntryAt<'_>) -> Option<Made> {
        let arch = match &e.v.arch {
            None => {
                self.required(e, "arch", "arch = { conv_channels = [16, 16, 32], pool_after = [2, 3], padding = \"same\", dense = [32] }");
                None
            }
            Some(_) => {
                let changes = e.table.get_ref().get("arch");
                self.arch_override(&e.field("arch"), e.model, e.own, changes)
            }
        };
        let train = self.recipe_train(e);
        Some(Made {
            own_arch: Some(arch?),
            ..Made::of(Recipe::Compress {
                train: train?,
                twin_of: None,
            })
        })
    }

    fn recipe_train(&mut self, e: &EntryAt<'_>) -> Option<TrainSpec> {
        let source = e.source;
        let Some(t) = &e.v.train else {
            self.problem(
                e.field("train"),
                e.source_span.clone(),
                format!("a `{source}` variant needs `train`"),
                Some("add `train = { epochs = 4, batch_size = 32, optimizer = \"adamw\", lr = 0.001 }`"),
            );
            return None;
        };
        let spec = self.train_spec(&e.field("train"), t, e.default_seed);
        if !self.needs_data(
            e.field("train"),
            t.span(),
            &format!("a `{source}` variant"),
            e.has_data,
        ) {
            return None;
        }
        spec
    }
}

/// One `[[variants]]` entry while its recipe is built: where it is, what it says, its model
/// and its source.
struct EntryAt<'a> {
    at: &'a str,
    v: &'a VariantEntry,
    model: &'a ModelDef,
    own: &'a ModelFields<'a>,
    table: &'a Spanned<DeValue<'a>>,
    source: &'static str,
    source_span: Range<usize>,
    has_data: bool,
    default_seed: u64,
}

impl EntryAt<'_> {
    /// The path of one of the entry's fields, as in `variants[2].dtype`.
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.at)
    }

    /// A variant the recipe names (`from`, `teacher`): the name, the field and its span.
    fn dep_of(
        &self,
        v: &Option<Spanned<String>>,
        field: &str,
    ) -> Option<(String, String, Range<usize>)> {
        v.as_ref()
            .map(|x| (x.get_ref().clone(), self.field(field), x.span()))
    }

    /// `from`, or `baseline` when it is left out (then pointing at `source`).
    fn made_from(&self) -> (String, (String, Range<usize>)) {
        let (from, field, span) = self.dep_of(&self.v.from, "from").unwrap_or((
            "baseline".into(),
            self.field("from"),
            self.source_span.clone(),
        ));
        (from, (field, span))
    }
}

/// A variant's recipe and what comes with it: the variant it is made from (field and span),
/// the architecture of a `distill` or `compress` variant, and the weights when they are known
/// without making.
struct Made {
    recipe: Recipe,
    dep: Option<(String, Range<usize>)>,
    own_arch: Option<Architecture>,
    weights: Option<WeightSource>,
}

impl Made {
    fn of(recipe: Recipe) -> Made {
        Made {
            recipe,
            dep: None,
            own_arch: None,
            weights: None,
        }
    }
}

/// What the variant asks of the model's kind that the kind does not accept, if anything:
/// the field to point at, where, and the message.
fn refused_recipe(
    info: &KindInfo,
    source: &str,
    v: &VariantEntry,
    source_span: &Range<usize>,
) -> Option<(&'static str, Range<usize>, String)> {
    let at_source = |r| Some((r, "source", source_span.clone()));
    let asked = match source {
        "quantize" => vec![at_source(RecipeKind::Quantize)],
        "distill" => vec![at_source(RecipeKind::Distill)],
        "compress" => vec![at_source(RecipeKind::Compress)],
        "prune" => {
            let method = match &v.method {
                Some(m) if m.get_ref() == "structured" => {
                    Some((RecipeKind::PruneStructured, "method", m.span()))
                }
                _ => at_source(RecipeKind::PruneMagnitude),
            };
            let finetune = v
                .finetune
                .as_ref()
                .map(|f| (RecipeKind::Train, "finetune", f.span()));
            vec![method, finetune]
        }
        _ => Vec::new(),
    };
    let (recipe, field, span) = asked
        .into_iter()
        .flatten()
        .find(|(r, ..)| !info.accepts(*r))?;
    let a = info.a();
    let trains = [RecipeKind::Train, RecipeKind::Distill, RecipeKind::Compress];
    let message = match recipe {
        _ if trains.contains(&recipe) && !trains.iter().any(|r| info.accepts(*r)) => {
            format!("training {a} is not supported (distill, compress and fine-tuning train)")
        }
        RecipeKind::Quantize => format!("{a} cannot be quantized"),
        RecipeKind::PruneMagnitude => format!("magnitude pruning is not supported for {a}"),
        RecipeKind::PruneStructured => format!("structured pruning is not supported for {a}"),
        RecipeKind::Train => format!("fine-tuning {a} is not supported"),
        RecipeKind::Distill => format!("distillation is not supported for {a}"),
        RecipeKind::Compress => format!("`compress` is not supported for {a}"),
    };
    Some((field, span, message))
}
