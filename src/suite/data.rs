//! The `[data]` table: the dataset that trains recipe variants and scores every variant
//! (labelled samples, or sentences for sentence encoders), its files checked here.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::schema::*;
use super::Validator;
use crate::data::{self, DataSource, DataSpec, Dataset, LabelColumn, Resize};

impl Validator {
    pub(super) fn file_field(&mut self, field: &str, v: &Spanned<String>) -> Option<PathBuf> {
        let path = self.base.join(v.get_ref());
        if !path.is_file() {
            self.problem(
                field,
                v.span(),
                format!("data file {} does not exist", path.display()),
                Some("paths are relative to the suite file"),
            );
            return None;
        }
        Some(path)
    }

    /// `[data]`: the resolved spec and the loaded dataset (loaded here so that a bad file
    /// is an input error before anything runs).
    pub(super) fn data(
        &mut self,
        d: &Option<Spanned<DataEntry>>,
    ) -> Option<(DataSpec, Option<Dataset>)> {
        let d = d.as_ref()?;
        let span = d.span();
        let d = d.get_ref();
        let source = self.word(
            "data.source",
            &d.source,
            &["digits", "idx", "csv", "npy", "sentences"],
        )?;
        let ok = self.data_fields_apply(d, source);
        if source == "sentences" {
            return self.text_data(d, span, ok);
        }
        let src = self.data_source(d, source);
        let layout = self.sample_layout(d);
        let (Some(source), Some(layout), true) = (src, layout, ok) else {
            return None;
        };
        let spec = DataSpec {
            scale: layout.scale.unwrap_or_else(|| source.default_scale()),
            source,
            shape: layout.shape,
            test_fraction: layout.test_fraction,
            seed: d.seed.unwrap_or(0),
            resize: layout.resize,
        };
        match data::load(&spec) {
            Ok(ds) => Some((spec, Some(ds))),
            Err(e) => {
                self.data_file_problem(d, span, &e);
                None
            }
        }
    }

    /// Every file field set must apply to the source; true when all do.
    fn data_fields_apply(&mut self, d: &DataEntry, source: &str) -> bool {
        let allowed: &[&str] = match source {
            "digits" => &[],
            "idx" => &["images", "labels"],
            "csv" => &["path", "label_column"],
            "sentences" => &["path", "pairs"],
            _ => &["features", "labels"],
        };
        let fields = [
            ("path", &d.path),
            ("images", &d.images),
            ("labels", &d.labels),
            ("features", &d.features),
            ("label_column", &d.label_column),
            ("pairs", &d.pairs),
        ];
        let mut ok = true;
        for (name, v) in fields {
            if let Some(v) = v {
                if !allowed.contains(&name) {
                    self.problem(
                        format!("data.{name}"),
                        v.span(),
                        format!("`{name}` does not apply to data source `{source}`"),
                        Some("remove it, or change `source`"),
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    /// A file the source needs: it must be given and exist.
    fn needed_file(
        &mut self,
        d: &DataEntry,
        source: &str,
        v: &Option<Spanned<String>>,
        name: &str,
    ) -> Option<PathBuf> {
        match v {
            Some(v) => self.file_field(&format!("data.{name}"), v),
            None => {
                self.problem(
                    format!("data.{name}"),
                    d.source.span(),
                    format!("data source `{source}` needs `{name}`"),
                    Some("paths are relative to the suite file"),
                );
                None
            }
        }
    }

    /// Where labelled samples come from: the built-in digits, or the source's files.
    fn data_source(&mut self, d: &DataEntry, source: &str) -> Option<DataSource> {
        match source {
            "digits" => Some(DataSource::Digits),
            "idx" => {
                let images = self.needed_file(d, source, &d.images, "images");
                let labels = self.needed_file(d, source, &d.labels, "labels");
                images
                    .zip(labels)
                    .map(|(images, labels)| DataSource::Idx { images, labels })
            }
            "csv" => {
                let path = self.needed_file(d, source, &d.path, "path");
                let label_column = match &d.label_column {
                    None => Some(LabelColumn::Last),
                    Some(v) => match self.word("data.label_column", v, &["last", "first"]) {
                        Some("first") => Some(LabelColumn::First),
                        Some(_) => Some(LabelColumn::Last),
                        None => None,
                    },
                };
                path.zip(label_column)
                    .map(|(path, label_column)| DataSource::Csv { path, label_column })
            }
            _ => {
                let features = self.needed_file(d, source, &d.features, "features");
                let labels = self.needed_file(d, source, &d.labels, "labels");
                features
                    .zip(labels)
                    .map(|(features, labels)| DataSource::Npy { features, labels })
            }
        }
    }

    /// How samples are read and held out: shape, scale, test fraction and resizing.
    fn sample_layout(&mut self, d: &DataEntry) -> Option<Layout> {
        let shape = match &d.shape {
            None => Some(None),
            Some(v) => {
                let dims = self.counts("data.shape", v, 1, false);
                match dims {
                    Some(s) if s.len() == 3 => Some(Some([s[0], s[1], s[2]])),
                    Some(s) => {
                        self.problem(
                            "data.shape",
                            v.span(),
                            format!("needs 3 values [height, width, channels], got {}", s.len()),
                            Some("as in `shape = [8, 8, 1]`"),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        let scale = match &d.scale {
            None => Some(None),
            Some(v) => self
                .positive(
                    "data.scale",
                    v,
                    "feature values are divided by it, as in scale = 255.0",
                )
                .map(Some),
        };
        let test_fraction = match &d.test_fraction {
            None => Some(0.2),
            Some(v) => self.fraction(
                "data.test_fraction",
                v,
                false,
                "the share of each class held out for scoring, as in 0.2",
            ),
        };
        let resize = match &d.resize {
            None => Some(Resize::None),
            Some(v) => match self.word("data.resize", v, &["bilinear", "nearest", "pad", "none"]) {
                Some("bilinear") => Some(Resize::Bilinear),
                Some("nearest") => Some(Resize::Nearest),
                Some("pad") => Some(Resize::Pad),
                Some(_) => Some(Resize::None),
                None => None,
            },
        };
        Some(Layout {
            shape: shape?,
            scale: scale?,
            test_fraction: test_fraction?,
            resize: resize?,
        })
    }

    /// A data file that does not load: the problem points at the field naming the file that
    /// failed, else at the table.
    fn data_file_problem(&mut self, d: &DataEntry, span: Range<usize>, e: &data::DataError) {
        let field_span = [
            ("path", &d.path),
            ("images", &d.images),
            ("labels", &d.labels),
            ("features", &d.features),
        ]
        .into_iter()
        .find_map(|(name, v)| {
            v.as_ref()
                .filter(|v| self.base.join(v.get_ref()) == e.path)
                .map(|v| (name, v.span()))
        });
        let (field, at) = match field_span {
            Some((name, s)) => (format!("data.{name}"), s),
            None => ("data".to_string(), span),
        };
        self.problem(
            field,
            at,
            e.to_string(),
            Some("docs/data-and-quality.md, \"Data formats\" (IDX, CSV with the label last or first, .npy)"),
        );
    }

    /// `[data]` with `source = "sentences"`: the sentences (and pairs) loaded here, so a bad
    /// file is an input error before anything runs.
    pub(super) fn text_data(
        &mut self,
        d: &DataEntry,
        span: Range<usize>,
        fields_ok: bool,
    ) -> Option<(DataSpec, Option<Dataset>)> {
        let mut ok = fields_ok;
        let image_fields = [
            ("shape", d.shape.as_ref().map(|v| v.span())),
            ("scale", d.scale.as_ref().map(|v| v.span())),
            ("test_fraction", d.test_fraction.as_ref().map(|v| v.span())),
            ("resize", d.resize.as_ref().map(|v| v.span())),
        ];
        for (name, at) in image_fields {
            if let Some(at) = at {
                self.problem(
                    format!("data.{name}"),
                    at,
                    format!("`{name}` does not apply to data source `sentences`"),
                    Some("sentences take `path` (one per line) and `pairs` (TSV: sentence1, sentence2, score)"),
                );
                ok = false;
            }
        }
        let sentences = match &d.path {
            None => Some(None),
            Some(v) => self.file_field("data.path", v).map(Some),
        };
        let pairs = match &d.pairs {
            None => Some(None),
            Some(v) => self.file_field("data.pairs", v).map(Some),
        };
        let (Some(sentences), Some(pairs), true) = (sentences, pairs, ok) else {
            return None;
        };
        let source = data::text::TextSource { sentences, pairs };
        if let Err(e) = data::text::load(&source) {
            let field = if d
                .pairs
                .as_ref()
                .is_some_and(|v| self.base.join(v.get_ref()) == e.path)
            {
                ("data.pairs", d.pairs.as_ref().map(|v| v.span()))
            } else {
                ("data.path", d.path.as_ref().map(|v| v.span()))
            };
            self.problem(
                field.0,
                field.1.unwrap_or(span),
                e.to_string(),
                Some("sentences: one per line; pairs: sentence1<TAB>sentence2<TAB>score per line, `#` comments"),
            );
            return None;
        }
        Some((
            DataSpec {
                source: DataSource::Sentences(source),
                shape: None,
                scale: 1.0,
                test_fraction: 0.0,
                seed: d.seed.unwrap_or(0),
                resize: Resize::None,
            },
            None,
        ))
    }
}

/// How labelled samples are read and held out (`scale` unset: the source's default).
struct Layout {
    shape: Option<[usize; 3]>,
    scale: Option<f64>,
    test_fraction: f64,
    resize: Resize,
}
