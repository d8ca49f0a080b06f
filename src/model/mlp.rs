//! The `mlp` kind: fully connected layers, `input_size -> hidden... -> classes`, ReLU between
//! them; a classifier scored on the suite's labelled samples (flattened).

use std::collections::HashMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::entry::{Entry, EntryContext};
use super::kind::{
    DataKind, DataMismatch, KindInfo, KindSpec, LoadedModel, ModelKind, Parsed, Pruned, Purpose,
    RecipeKind,
};
use super::layout::{check_classifier_data, is_stack_weight, kept_units, read_classes, Layout};
use super::stack::Stack;
use super::{Architecture, TensorShape, Weights};
use crate::data::Dataset;
use crate::schema::LayerSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    pub input_size: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
}

/// The fields of an `mlp` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpEntry {
    input_size: Option<Spanned<i64>>,
    hidden: Option<Spanned<Vec<i64>>>,
    classes: Option<Spanned<i64>>,
}

impl Mlp {
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            convs: None,
            features: self.input_size,
            hidden: self.hidden.clone(),
            classes: self.classes,
        }
    }
}

impl KindSpec for Mlp {
    const INFO: KindInfo = KindInfo {
        name: "mlp",
        article: "an",
        fields: &["input_size", "hidden", "classes"],
        overridable: &["hidden"],
        refused: &[],
        recipes: &[
            RecipeKind::Quantize,
            RecipeKind::PruneMagnitude,
            RecipeKind::PruneStructured,
            RecipeKind::Train,
            RecipeKind::Distill,
            RecipeKind::Compress,
        ],
        data: DataKind::Samples,
        structured: "L1 norm",
    };

    fn parse(entry: &Entry<'_>, cx: &mut EntryContext<'_>) -> Option<Parsed<Self>> {
        let e: MlpEntry = entry.read(cx)?;
        let classes = read_classes(&e.classes, &Self::INFO, cx);
        let Some(input) = &e.input_size else {
            let (field, span) = (cx.field("input_size"), cx.arch_span.clone());
            cx.problem(
                field,
                span,
                "an `mlp` needs `input_size`",
                Some("add `input_size = 64`, the number of input features"),
            );
            return None;
        };
        let field = cx.field("input_size");
        let input_size = cx.count(&field, input, 1);
        let field = cx.field("hidden");
        let hidden = match &e.hidden {
            Some(h) => cx.counts(&field, h, 1, true),
            None => Some(Vec::new()),
        };
        Some(Parsed::spec(Mlp {
            input_size: input_size?,
            hidden: hidden?,
            classes: classes?,
        }))
    }
}

impl ModelKind for Mlp {
    fn info(&self) -> &'static KindInfo {
        &Self::INFO
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![self.input_size]
    }
    fn outputs(&self) -> usize {
        self.classes
    }
    fn tensors(&self) -> Vec<TensorShape> {
        self.layout().tensors()
    }
    fn flops_per_sample(&self) -> u64 {
        self.layout().flops_per_sample()
    }
    fn layers(&self) -> Vec<LayerSpec> {
        self.layout().layers()
    }
    fn is_matmul_weight(&self, name: &str) -> bool {
        is_stack_weight(name)
    }

    fn check_raw_input(&self, dims: &[usize]) -> Result<(), String> {
        match dims {
            [n] if *n == self.input_size => Ok(()),
            _ => Err(format!(
                "[{}]: an mlp's raw input has its input_size features",
                self.input_size
            )),
        }
    }

    /// Every hidden layer keeps `max(1, round(units * (1 - sparsity)))` neurons.
    fn structured(&self, sparsity: f64) -> Option<Architecture> {
        Some(Architecture::Mlp(Mlp {
            hidden: self.hidden.iter().map(|&n| kept_units(n, sparsity)).collect(),
            ..self.clone()
        }))
    }

    fn prune_structured(
        &self,
        tensors: &HashMap<String, Tensor>,
        sparsity: f64,
    ) -> candle_core::Result<Pruned> {
        let (t, report) = self.layout().prune_structured(tensors, sparsity)?;
        let arch = self.structured(sparsity).expect("an mlp prunes");
        Ok((arch, t, report))
    }

    fn check_dataset(&self, data: &Dataset) -> Result<(), DataMismatch> {
        let [h, w, c] = data.hwc;
        let shapes = if self.input_size == h * w * c {
            Ok(())
        } else {
            Err(format!(
                "the data has {} features per sample ({h}x{w}x{c}), the mlp's input_size is {}",
                h * w * c,
                self.input_size
            ))
        };
        check_classifier_data(data, self.classes, shapes, "input_size")
    }

    /// Each sample flattened in C, H, W order.
    fn dataset_inputs(&self, data: &Dataset, indices: &[usize]) -> Result<Vec<f32>, String> {
        Ok(data.inputs(None, indices))
    }

    fn build(
        &self,
        weights: &Weights,
        purpose: Purpose,
    ) -> candle_core::Result<Box<dyn LoadedModel>> {
        Ok(Box::new(Stack::from_weights(
            &self.layout(),
            weights,
            purpose,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_parameters_and_layers_by_hand() {
        let mlp = Mlp {
            input_size: 784,
            hidden: vec![128],
            classes: 10,
        };
        assert_eq!(mlp.flops_per_sample(), 2 * (784 * 128 + 128 * 10));
        assert_eq!(mlp.param_count(), 784 * 128 + 128 + 128 * 10 + 10);
        let mlp = Mlp {
            input_size: 784,
            hidden: vec![256, 128],
            classes: 10,
        };
        let layers = mlp.layers();
        assert_eq!(layers.len(), 3);
        assert_eq!(
            layers.iter().map(|l| l.flops).collect::<Vec<_>>(),
            vec![2 * 784 * 256, 2 * 256 * 128, 2 * 128 * 10]
        );
        assert_eq!(layers[0].input, vec![784]);
        assert_eq!(layers[2].output, vec![10]);
        assert_eq!(mlp.flops_per_sample(), 469_504);
        assert_eq!(mlp.check_raw_input(&[784]), Ok(()));
        assert!(mlp.check_raw_input(&[28, 28, 1]).is_err());
    }

    #[test]
    fn labelled_data_must_match_the_features_and_the_classes() {
        let d = crate::data::load(&crate::data::DataSpec {
            source: crate::data::DataSource::Digits,
            shape: None,
            scale: 16.0,
            test_fraction: 0.2,
            seed: 0,
            resize: crate::data::Resize::None,
        })
        .unwrap();
        let mlp = |input_size, classes| Mlp {
            input_size,
            hidden: vec![8],
            classes,
        };
        assert_eq!(mlp(64, 10).check_dataset(&d), Ok(()));
        assert_eq!(mlp(64, 10).dataset_inputs(&d, &[0]).unwrap(), d.features[..64]);
        let wrong = mlp(60, 10).check_dataset(&d).unwrap_err();
        assert!(wrong.message.contains("64 features per sample"), "{wrong:?}");
        assert_eq!(wrong.field, Some("input_size"));
        let few = mlp(64, 5).check_dataset(&d).unwrap_err();
        assert!(few.message.contains("labels up to 9"), "{few:?}");
    }
}
