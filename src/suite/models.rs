//! The `[[models]]` tables: architectures, weights, raw inputs and what data they take.

use super::*;

impl Validator {
    /// Sentences feed only `bert` models, and a `bert` is scored only on sentences.
    pub(super) fn text_and_models(
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

    /// `raw_input`: the shape of inputs before preprocessing, same channels or features.
    pub(super) fn raw_input(
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

    pub(super) fn models(
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

    pub(super) fn architecture(&mut self, at: &str, m: &ModelEntry) -> Option<Architecture> {
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
    pub(super) fn bert_architecture(&mut self, at: &str, m: &ModelEntry) -> Option<Architecture> {
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
        if let Err(e) = model::check_weights_file(arch, &path) {
            self.problem(field, p.span(), e.to_string(), Some("the file must hold the architecture's tensors by name and shape (README: weights layout)"));
            return None;
        }
        Some(path)
    }
}
