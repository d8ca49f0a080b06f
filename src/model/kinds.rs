//! The registry of model kinds. `model_kinds!` turns one line per kind into the serde enum
//! `Architecture` (tagged `arch`, one variant per kind holding its validated spec) and its
//! dispatch: to each kind's [`ModelKind`], its [`KindInfo`] and its entry parsing.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::entry::{Entry, EntryContext};
use super::kind::{KindInfo, ModelKind, Parsed};

/// What `model_kinds!` generates for its enum: the registered kinds and the dispatch to them.
pub trait Registry: Sized + Clone + fmt::Debug + Serialize + DeserializeOwned {
    /// Every registered kind, in registration order.
    const KINDS: &'static [&'static KindInfo];

    fn kind(&self) -> &dyn ModelKind;

    /// Parses an entry of the kind named `name`; `None` when no kind has that name.
    fn parse(
        name: &str,
        entry: &Entry<'_>,
        cx: &mut EntryContext<'_>,
    ) -> Option<Option<Parsed<Self>>>;

    /// Applies a variant's `changes` to a model's own fields, as the kind `name` does.
    fn merge_override<'i>(name: &str, entry: &mut Entry<'i>, changes: &Entry<'i>);

    /// The registered kind named `name`.
    fn info_of(name: &str) -> Option<&'static KindInfo> {
        Self::KINDS.iter().copied().find(|k| k.name == name)
    }
}

/// The hint for an unknown `arch`: the registered kinds, offered as a correction when the word
/// is one edit away from one of them.
pub fn unknown_kind_hint(kinds: &[&KindInfo], got: &str) -> String {
    let names: Vec<String> = kinds.iter().map(|k| format!("`{}`", k.name)).collect();
    let near = kinds
        .iter()
        .map(|k| strsim::damerau_levenshtein(got, k.name))
        .min()
        .is_some_and(|d| d <= 1);
    match names.as_slice() {
        [] => "no model kinds are registered".into(),
        [one] if near => format!("did you mean {one}?"),
        [one] => format!("the only architecture is {one}"),
        [init @ .., last] if near => format!("did you mean {} or {last}?", init.join(", ")),
        [init @ .., last] => format!("architectures are {} and {last}", init.join(", ")),
    }
}

/// Registers model kinds, one line each: `mlp => Mlp,` declares the module `mlp` (the file
/// `model/mlp.rs`, or `model/mlp/mod.rs`) whose `Mlp` implements [`ModelKind`] and
/// [`super::KindSpec`], and adds the variant `Architecture::Mlp(mlp::Mlp)`, written
/// `{"arch": "mlp", ...}`. The variant's name in snake_case must be the kind's `arch` word
/// (a test checks it).
///
/// `model_kinds!(@registry Name { path::Spec => Variant, ... })` makes such an enum from specs
/// declared elsewhere (tests register a kind of their own that way).
macro_rules! model_kinds {
    ($($module:ident => $kind:ident),+ $(,)?) => {
        $(pub mod $module;)+
        $crate::model::kinds::model_kinds!(@registry Architecture { $($module::$kind => $kind),+ });
    };
    (@registry $registry:ident { $($spec:ty => $variant:ident),+ $(,)? }) => {
        /// A model's architecture: the validated spec of one registered kind.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "arch", rename_all = "snake_case")]
        pub enum $registry {
            $($variant($spec)),+
        }

        impl $registry {
            /// What the architecture's kind says about it.
            pub fn kind(&self) -> &dyn $crate::model::ModelKind {
                match self {
                    $($registry::$variant(spec) => spec),+
                }
            }

            pub fn info(&self) -> &'static $crate::model::KindInfo {
                $crate::model::ModelKind::info(self.kind())
            }
        }

        impl $crate::model::kinds::Registry for $registry {
            const KINDS: &'static [&'static $crate::model::KindInfo] =
                &[$(&<$spec as $crate::model::KindSpec>::INFO),+];

            fn kind(&self) -> &dyn $crate::model::ModelKind {
                $registry::kind(self)
            }

            fn parse(
                name: &str,
                entry: &$crate::model::Entry<'_>,
                cx: &mut $crate::model::EntryContext<'_>,
            ) -> Option<Option<$crate::model::Parsed<Self>>> {
                $(
                    if name == <$spec as $crate::model::KindSpec>::INFO.name {
                        let parsed = <$spec as $crate::model::KindSpec>::parse(entry, cx);
                        return Some(parsed.map(|p| p.map($registry::$variant)));
                    }
                )+
                None
            }

            fn merge_override<'i>(
                name: &str,
                entry: &mut $crate::model::Entry<'i>,
                changes: &$crate::model::Entry<'i>,
            ) {
                $(
                    if name == <$spec as $crate::model::KindSpec>::INFO.name {
                        return <$spec as $crate::model::KindSpec>::merge_override(entry, changes);
                    }
                )+
            }
        }
    };
}

pub(crate) use model_kinds;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, Tensor};
    use serde::{Deserialize, Serialize};
    use toml::de::DeTable;
    use toml::Spanned;

    use super::*;
    use crate::model::bert::Bert;
    use crate::model::cnn::Cnn;
    use crate::model::mlp::Mlp;
    use crate::model::{
        entry, synthetic_input, Architecture, CaseInputs, DataKind, Entry, EntryContext, KindSpec,
        LoadedModel, Padding, Purpose, RecipeKind, TensorShape, WeightSource, Weights,
    };
    use crate::schema::LayerSpec;
    use crate::spec::Checker;

    /// The serialized architecture feeds the artifact cache's keys (`variant::artifact`) and
    /// every GGUF artifact's metadata: a change here would rebuild every cached variant.
    #[test]
    fn every_kind_serializes_as_the_closed_enum_did() {
        let archs = [
            Architecture::Mlp(Mlp {
                input_size: 64,
                hidden: vec![16, 8],
                classes: 10,
            }),
            Architecture::Cnn(Cnn {
                input_hwc: [28, 28, 1],
                conv_channels: vec![4, 8],
                pool_after: vec![true, false],
                kernel: 3,
                padding: Padding::Same,
                pool: 2,
                dense: vec![16],
                classes: 10,
            }),
            Architecture::Bert(Bert {
                vocab: 30522,
                hidden: 384,
                layers: 6,
                heads: 12,
                head_dim: 32,
                intermediate: 1536,
                max_positions: 512,
                type_vocab: 2,
                layer_norm_eps: 1e-12,
                seq_len: 128,
            }),
        ];
        // Written by the binary before the model-kind seam.
        let before = [
            r#"{"arch":"mlp","input_size":64,"hidden":[16,8],"classes":10}"#,
            r#"{"arch":"cnn","input_hwc":[28,28,1],"conv_channels":[4,8],"pool_after":[true,false],"kernel":3,"padding":"same","pool":2,"dense":[16],"classes":10}"#,
            r#"{"arch":"bert","vocab":30522,"hidden":384,"layers":6,"heads":12,"head_dim":32,"intermediate":1536,"max_positions":512,"type_vocab":2,"layer_norm_eps":1e-12,"seq_len":128}"#,
        ];
        for (arch, json) in archs.iter().zip(before) {
            assert_eq!(serde_json::to_string(arch).unwrap(), json);
            assert_eq!(&serde_json::from_str::<Architecture>(json).unwrap(), arch);
            assert!(json.starts_with(&format!("{{\"arch\":\"{}\"", arch.info().name)));
        }
        // The built-in kinds first, in their order; kinds added later follow them.
        let names: Vec<&str> = Architecture::KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names, ["mlp", "cnn", "bert", "llm", "onnx"]);
    }

    #[test]
    fn an_unknown_kind_is_answered_with_the_registered_ones() {
        let kinds = Architecture::KINDS;
        assert_eq!(
            unknown_kind_hint(kinds, "bret"),
            "did you mean `mlp`, `cnn`, `bert`, `llm` or `onnx`?"
        );
        assert_eq!(
            unknown_kind_hint(kinds, "transformer"),
            "architectures are `mlp`, `cnn`, `bert`, `llm` and `onnx`"
        );
    }

    /// A kind made up for this test the way a contributor adds one (docs/architecture.md,
    /// "Adding a model kind"): `scale` multiplies each input feature by a weight of its own.
    mod scale {
        use super::*;

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Scale {
            pub features: usize,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ScaleEntry {
            features: Spanned<i64>,
        }

        impl KindSpec for Scale {
            const INFO: KindInfo = KindInfo {
                name: "scale",
                article: "a",
                fields: &["features"],
                overridable: &[],
                refused: &[("raw_input", "remove it")],
                recipes: &[RecipeKind::Quantize],
                data: DataKind::Samples,
                structured: "",
            };

            fn parse(entry: &Entry<'_>, cx: &mut EntryContext<'_>) -> Option<Parsed<Self>> {
                let e: ScaleEntry = entry.read(cx)?;
                let field = cx.field("features");
                let features = cx.count(&field, &e.features, 1)?;
                Some(Parsed::spec(Scale { features }))
            }
        }

        impl ModelKind for Scale {
            fn info(&self) -> &'static KindInfo {
                &Self::INFO
            }
            fn input_shape(&self) -> Vec<usize> {
                vec![self.features]
            }
            fn outputs(&self) -> usize {
                self.features
            }
            fn tensors(&self) -> Vec<TensorShape> {
                vec![TensorShape {
                    name: "scale.weight".into(),
                    shape: vec![self.features],
                }]
            }
            fn flops_per_sample(&self) -> u64 {
                self.features as u64
            }
            fn layers(&self) -> Vec<LayerSpec> {
                Vec::new()
            }
            fn is_matmul_weight(&self, _name: &str) -> bool {
                false
            }
            fn build(
                &self,
                weights: &Weights,
                _purpose: Purpose,
            ) -> candle_core::Result<Box<dyn LoadedModel>> {
                let w = weights["scale.weight"].to_f32(&[self.features])?;
                Ok(Box::new(ScaleModel {
                    w,
                    inputs: Vec::new(),
                }))
            }
        }

        struct ScaleModel {
            w: Tensor,
            inputs: Vec<Tensor>,
        }

        impl LoadedModel for ScaleModel {
            fn params(&self) -> usize {
                self.w.elem_count()
            }
            fn weight_bytes(&self) -> usize {
                self.w.elem_count() * 4
            }
            fn input_dtype(&self) -> DType {
                DType::F32
            }
            fn prepare(
                &mut self,
                sizes: &[usize],
                inputs: &CaseInputs<'_>,
                device: &Device,
            ) -> Result<Vec<Tensor>, String> {
                let features = self.w.elem_count();
                let kind = Scale { features };
                self.inputs = sizes
                    .iter()
                    .map(|&n| synthetic_input(&kind, n, inputs.seed, DType::F32, device))
                    .collect::<candle_core::Result<_>>()
                    .map_err(|e| e.to_string())?;
                Ok(self.inputs.clone())
            }
            fn preprocess(&mut self, batch: usize) -> candle_core::Result<Tensor> {
                Ok(self.inputs[batch].clone())
            }
            fn forward(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
                x.broadcast_mul(&self.w)
            }
            fn postprocess(&mut self, y: &Tensor) -> candle_core::Result<()> {
                std::hint::black_box(y.to_vec2::<f32>()?);
                Ok(())
            }
        }
    }

    // The registration line, through the same macro as the built-in kinds (which `model/mod.rs`
    // registers as `mlp => Mlp,`; a kind declared inline takes the `@registry` form).
    model_kinds!(@registry Registered { Mlp => Mlp, scale::Scale => Scale });

    /// A new kind is its file plus one registration line: the registry lists it, serde writes
    /// it tagged by its name, the shared entry checks and its own parsing locate problems in
    /// the suite file, and the worker's side loads and runs it through the traits.
    #[test]
    fn a_kind_registered_with_one_line_is_parsed_described_loaded_and_run() {
        let names: Vec<&str> = Registered::KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names, ["mlp", "scale"]);
        assert_eq!(
            unknown_kind_hint(Registered::KINDS, "scal"),
            "did you mean `mlp` or `scale`?"
        );
        let json = r#"{"arch":"scale","features":3}"#;
        let arch: Registered = serde_json::from_str(json).unwrap();
        assert_eq!(arch, Registered::Scale(scale::Scale { features: 3 }));
        assert_eq!(arch.info().name, "scale");
        assert_eq!(serde_json::to_string(&arch).unwrap(), json);

        let text = "[[models]]\nname = \"s\"\narch = \"scale\"\nfeatures = 4\nhidden = [3]\n";
        let root = DeTable::parse(text).unwrap();
        let models = entry::tables(root.get_ref(), "models");
        let mut own = Entry::of(&models[0]).unwrap().without(&["name", "arch"]);
        let mut checker = Checker::new(text);
        let mut cx = EntryContext {
            checker: &mut checker,
            at: "models[0]".into(),
            arch_span: text.find("\"scale\"").map(|i| i..i + 7).unwrap(),
            base: std::path::Path::new("."),
        };
        let info = Registered::info_of("scale").unwrap();
        let expected = ["name", "arch", "features"];
        assert!(!entry::keep_own_fields(
            &mut own,
            info,
            Registered::KINDS,
            &expected,
            &mut cx
        ));
        let parsed = Registered::parse("scale", &own, &mut cx).unwrap().unwrap();
        let got: Vec<String> = checker.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            ["3:8: `models[0].hidden`: `hidden` does not apply to arch `scale`\n      hint: it is an `mlp` field; remove it, or change `arch`"]
        );
        let kind = parsed.spec.kind();
        assert_eq!((kind.param_count(), kind.flops_per_sample()), (4, 4));
        assert!(!info.accepts(RecipeKind::PruneStructured));
        assert_eq!(
            info.variants_hint(),
            "scale variants: \"baseline\", \"file\" and \"quantize\""
        );
        let refused = kind.prune_structured(&HashMap::new(), 0.5).unwrap_err();
        assert!(refused.to_string().contains("not supported for a `scale`"));

        let cpu = Device::Cpu;
        let mut model = kind.load(&WeightSource::Seeded { seed: 1 }, &cpu).unwrap();
        let inputs = CaseInputs {
            raw_shape: None,
            text: None,
            seed: 7,
        };
        let x = model.prepare(&[2], &inputs, &cpu).unwrap();
        let y = model.forward(&x[0]).unwrap();
        assert_eq!(y.dims(), &[2, 4]);
        model.postprocess(&y).unwrap();
        assert!(model.as_any_mut().is_none());
        assert_eq!(model.step_count(), 0);
        assert!(model.forward_step(0, &x[0]).is_err());
    }
}
