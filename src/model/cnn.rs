//! The `cnn` kind: convolutions (ReLU, optional max pooling after each), then dense layers;
//! a classifier scored on the suite's labelled images, resized to its input when `[data]`
//! says how.

use std::collections::HashMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::entry::{Entry, EntryContext};
use super::kind::{
    DataKind, DataMismatch, KindInfo, KindSpec, LoadedModel, ModelKind, Parsed, Pruned, Purpose,
    RecipeKind,
};
use super::layout::{
    check_classifier_data, is_stack_weight, kept_units, read_classes, Convs, Layout, Padding,
};
use super::stack::Stack;
use super::{Architecture, TensorShape, Weights};
use crate::data::{self, Dataset};
use crate::schema::LayerSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cnn {
    /// Height, width, channels of one input image.
    pub input_hwc: [usize; 3],
    pub conv_channels: Vec<usize>,
    /// `pool_after[i]`: whether convolution `i` is followed by max pooling.
    pub pool_after: Vec<bool>,
    pub kernel: usize,
    pub padding: Padding,
    pub pool: usize,
    pub dense: Vec<usize>,
    pub classes: usize,
}

/// The fields of a `cnn` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CnnEntry {
    input: Option<Spanned<Vec<i64>>>,
    conv_channels: Option<Spanned<Vec<i64>>>,
    pool_after: Option<Spanned<Vec<i64>>>,
    kernel: Option<Spanned<i64>>,
    padding: Option<Spanned<String>>,
    pool: Option<Spanned<i64>>,
    dense: Option<Spanned<Vec<i64>>>,
    classes: Option<Spanned<i64>>,
}

impl Cnn {
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            convs: Some(Convs {
                input_hwc: self.input_hwc,
                channels: self.conv_channels.clone(),
                pool_after: self.pool_after.clone(),
                kernel: self.kernel,
                padding: self.padding,
                pool: self.pool,
            }),
            features: 0,
            hidden: self.dense.clone(),
            classes: self.classes,
        }
    }

    /// Spatial size `(h, w)` after each convolution block, or the index of the first
    /// convolution whose output would be empty.
    pub fn conv_output_sizes(&self) -> Result<Vec<(usize, usize)>, usize> {
        self.layout().conv_output_sizes()
    }
}

impl KindSpec for Cnn {
    const INFO: KindInfo = KindInfo {
        name: "cnn",
        article: "a",
        fields: &[
            "input",
            "conv_channels",
            "pool_after",
            "kernel",
            "padding",
            "pool",
            "dense",
            "classes",
        ],
        overridable: &[
            "conv_channels",
            "pool_after",
            "kernel",
            "padding",
            "pool",
            "dense",
        ],
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
        let e: CnnEntry = entry.read(cx)?;
        let classes = read_classes(&e.classes, &Self::INFO, cx);
        let (Some(input), Some(channels)) = (&e.input, &e.conv_channels) else {
            let missing = if e.input.is_none() {
                "input"
            } else {
                "conv_channels"
            };
            let (field, span) = (cx.field(missing), cx.arch_span.clone());
            cx.problem(
                field,
                span,
                "a `cnn` needs `input` ([height, width, channels]) and `conv_channels`",
                Some("for 28x28 greyscale images: input = [28, 28, 1], conv_channels = [32, 64]"),
            );
            return None;
        };
        let field = cx.field("input");
        let input_v = cx.counts(&field, input, 1, false);
        if input.get_ref().len() != 3 {
            let message = format!(
                "needs 3 values [height, width, channels], got {}",
                input.get_ref().len()
            );
            cx.problem(
                field,
                input.span(),
                message,
                Some("as in `input = [28, 28, 1]`"),
            );
            return None;
        }
        let field = cx.field("conv_channels");
        let conv_channels = cx.counts(&field, channels, 1, false)?;
        let kernel = match &e.kernel {
            Some(k) => {
                let field = cx.field("kernel");
                cx.count(&field, k, 1)?
            }
            None => 3,
        };
        let padding = read_padding(&e.padding, kernel, cx)?;
        let pool = match &e.pool {
            Some(p) => {
                let field = cx.field("pool");
                cx.count(&field, p, 1)?
            }
            None => 2,
        };
        let pool_after = read_pool_after(&e.pool_after, conv_channels.len(), cx)?;
        let dense = match &e.dense {
            Some(d) => {
                let field = cx.field("dense");
                cx.counts(&field, d, 1, true)?
            }
            None => Vec::new(),
        };
        let input_v = input_v?;
        let cnn = Cnn {
            input_hwc: [input_v[0], input_v[1], input_v[2]],
            conv_channels,
            pool_after,
            kernel,
            padding,
            pool,
            dense,
            classes: classes?,
        };
        if let Err(i) = cnn.conv_output_sizes() {
            let field = cx.field(&format!("conv_channels[{i}]"));
            cx.problem(
                field,
                channels.span(),
                format!("the image is too small for convolution {}: its output would be empty", i + 1),
                Some("use a larger `input`, fewer convolutions, a smaller `kernel` or `pool`, or padding = \"same\""),
            );
            return None;
        }
        Some(Parsed::spec(cnn))
    }

    /// A new `conv_channels` without `pool_after` pools after every convolution.
    fn merge_override<'i>(entry: &mut Entry<'i>, changes: &Entry<'i>) {
        if changes.contains("conv_channels") && !changes.contains("pool_after") {
            entry.remove("pool_after");
        }
        entry.replace_from(changes);
    }
}

/// `padding`: `valid` (the default) or `same` (odd kernels only).
fn read_padding(
    v: &Option<Spanned<String>>,
    kernel: usize,
    cx: &mut EntryContext<'_>,
) -> Option<Padding> {
    let field = cx.field("padding");
    match v.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
        None | Some(("valid", _)) => Some(Padding::Valid),
        Some(("same", span)) => {
            if kernel.is_multiple_of(2) {
                cx.problem(
                    field,
                    span,
                    format!("`same` padding needs an odd kernel, got {kernel}"),
                    Some("use kernel = 3 or 5, or padding = \"valid\""),
                );
            }
            Some(Padding::Same)
        }
        Some((other, span)) => {
            cx.problem(
                field,
                span,
                format!("unknown padding `{other}`"),
                Some("use \"valid\" or \"same\""),
            );
            None
        }
    }
}

/// `pool_after`: 1-based numbers of the convolutions followed by pooling (default: all).
fn read_pool_after(
    v: &Option<Spanned<Vec<i64>>>,
    convs: usize,
    cx: &mut EntryContext<'_>,
) -> Option<Vec<bool>> {
    let Some(list) = v else {
        return Some(vec![true; convs]);
    };
    let field = cx.field("pool_after");
    let after = cx.counts(&field, list, 1, true)?;
    if let Some(&bad) = after.iter().find(|&&i| i > convs) {
        let hint = format!("entries are 1-based convolution numbers, 1 to {convs}");
        cx.problem(
            field,
            list.span(),
            format!("there is no convolution {bad}"),
            Some(&hint),
        );
        return None;
    }
    Some((1..=convs).map(|i| after.contains(&i)).collect())
}

impl ModelKind for Cnn {
    fn info(&self) -> &'static KindInfo {
        &Self::INFO
    }
    fn input_shape(&self) -> Vec<usize> {
        self.layout().input_shape()
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
        let channels = self.input_hwc[2];
        match dims {
            [_, _, c] if *c == channels => Ok(()),
            _ => Err(format!("[height, width, channels] with the model's {channels} channel(s); images are resized to `input`")),
        }
    }

    /// Every convolution and hidden dense layer keeps `max(1, round(units * (1 -
    /// sparsity)))` units.
    fn structured(&self, sparsity: f64) -> Option<Architecture> {
        let keep = |v: &[usize]| v.iter().map(|&n| kept_units(n, sparsity)).collect();
        Some(Architecture::Cnn(Cnn {
            conv_channels: keep(&self.conv_channels),
            dense: keep(&self.dense),
            ..self.clone()
        }))
    }

    fn prune_structured(
        &self,
        tensors: &HashMap<String, Tensor>,
        sparsity: f64,
    ) -> candle_core::Result<Pruned> {
        let (t, report) = self.layout().prune_structured(tensors, sparsity)?;
        let arch = self.structured(sparsity).expect("a cnn prunes");
        Ok((arch, t, report))
    }

    fn check_dataset(&self, data: &Dataset) -> Result<(), DataMismatch> {
        let [h, w, c] = data.hwc;
        let [ih, iw, ic] = self.input_hwc;
        let shapes = if ic != c {
            Err(format!(
                "the data has {c} channel(s), the model's input has {ic}"
            ))
        } else {
            data::check_resize((h, w), (ih, iw), data.resize)
        };
        check_classifier_data(data, self.classes, shapes, "input")
    }

    /// Each image as NCHW at the model's input size (resized as `[data]` says).
    fn dataset_inputs(&self, data: &Dataset, indices: &[usize]) -> Result<Vec<f32>, String> {
        let [h, w, _] = self.input_hwc;
        Ok(data.inputs(Some((h, w)), indices))
    }

    fn describe_data(&self, data: &Dataset) -> String {
        let [h, w, _] = self.input_hwc;
        data.describe_test(Some((h, w)))
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
    use crate::schema::LayerKind;

    /// The Keras MNIST CNN of the compression guide: Conv32-Pool-Conv64-Pool-Dense64-Dense10.
    pub fn keras_cnn() -> Cnn {
        Cnn {
            input_hwc: [28, 28, 1],
            conv_channels: vec![32, 64],
            pool_after: vec![true, true],
            kernel: 3,
            padding: Padding::Valid,
            pool: 2,
            dense: vec![64],
            classes: 10,
        }
    }

    #[test]
    fn keras_cnn_shapes_and_parameters() {
        let cnn = keras_cnn();
        // 28 -conv-> 26 -pool-> 13 -conv-> 11 -pool-> 5
        assert_eq!(cnn.conv_output_sizes(), Ok(vec![(13, 13), (5, 5)]));
        // 320 + 18,496 + (1600*64 + 64) + (64*10 + 10), as Keras' model.summary() prints.
        assert_eq!(cnn.param_count(), 121_930);
        let names: Vec<_> = cnn.tensors().into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "conv1.bias",
                "conv2.weight",
                "conv2.bias",
                "fc1.weight",
                "fc1.bias",
                "fc2.weight",
                "fc2.bias"
            ]
        );
        assert_eq!(cnn.input_shape(), vec![1, 28, 28]);
    }

    #[test]
    fn flops_by_hand() {
        // conv1: 2*9*1*32*26*26 = 389,376; conv2: 2*9*32*64*11*11 = 4,460,544;
        // fc1: 2*1600*64 = 204,800; fc2: 2*64*10 = 1,280.
        assert_eq!(
            keras_cnn().flops_per_sample(),
            389_376 + 4_460_544 + 204_800 + 1_280
        );
    }

    /// Every step of the seed CNN by hand: shapes, FLOPs (a multiply-add is 2 FLOPs) and
    /// parameters, and their sums equal the whole-model figures.
    #[test]
    fn keras_cnn_layers_by_hand() {
        let layers = keras_cnn().layers();
        type Row<'a> = (&'a str, LayerKind, Vec<usize>, Vec<usize>, u64, usize);
        let rows: Vec<Row> = layers
            .iter()
            .map(|l| {
                (
                    l.name.as_str(),
                    l.kind,
                    l.input.clone(),
                    l.output.clone(),
                    l.flops,
                    l.params,
                )
            })
            .collect();
        use LayerKind::*;
        assert_eq!(
            rows,
            vec![
                // 26*26 outputs x 32 channels, each 3*3*1 multiply-adds: 2*9*32*676.
                (
                    "conv1",
                    Conv,
                    vec![1, 28, 28],
                    vec![32, 26, 26],
                    389_376,
                    288 + 32
                ),
                ("pool1", Pool, vec![32, 26, 26], vec![32, 13, 13], 0, 0),
                // 11*11 outputs x 64 channels, each 3*3*32 multiply-adds: 2*288*64*121.
                (
                    "conv2",
                    Conv,
                    vec![32, 13, 13],
                    vec![64, 11, 11],
                    4_460_544,
                    18_432 + 64
                ),
                // 11 -> 5: the last row and column do not fill a window and are dropped.
                ("pool2", Pool, vec![64, 11, 11], vec![64, 5, 5], 0, 0),
                ("fc1", Dense, vec![1600], vec![64], 204_800, 102_400 + 64),
                ("fc2", Dense, vec![64], vec![10], 1_280, 640 + 10),
            ]
        );
        let cnn = keras_cnn();
        assert_eq!(
            layers.iter().map(|l| l.flops).sum::<u64>(),
            cnn.flops_per_sample()
        );
        assert_eq!(
            layers.iter().map(|l| l.params).sum::<usize>(),
            cnn.param_count()
        );
    }

    /// `same` padding and a convolution without pooling: by hand.
    #[test]
    fn compressed_cnn_layers_by_hand() {
        let cnn = Cnn {
            input_hwc: [28, 28, 1],
            conv_channels: vec![16, 16, 32],
            pool_after: vec![false, true, true],
            kernel: 3,
            padding: Padding::Same,
            pool: 2,
            dense: vec![32],
            classes: 10,
        };
        let names: Vec<String> = cnn.layers().into_iter().map(|l| l.name).collect();
        assert_eq!(
            names,
            ["conv1", "conv2", "pool2", "conv3", "pool3", "fc1", "fc2"]
        );
        let flops: Vec<u64> = cnn.layers().iter().map(|l| l.flops).collect();
        assert_eq!(
            flops,
            vec![
                2 * 9 * 16 * 28 * 28,      // conv1: 225,792
                2 * 9 * 16 * 16 * 28 * 28, // conv2 at full resolution: 3,612,672
                0,
                2 * 9 * 16 * 32 * 14 * 14, // conv3: 1,806,336
                0,
                2 * 32 * 7 * 7 * 32, // fc1: 100,352
                2 * 32 * 10,         // fc2: 640
            ]
        );
        // 5.75 MFLOP/sample, as BENCHMARKS.md's seed-cnn table says for `compressed`.
        assert_eq!(cnn.flops_per_sample(), 5_745_792);
    }

    #[test]
    fn too_small_an_image_is_reported_at_the_first_empty_conv() {
        let mut cnn = keras_cnn();
        cnn.input_hwc = [6, 6, 1];
        // 6 -conv-> 4 -pool-> 2 -conv-> (2 < 3) empty
        assert_eq!(cnn.conv_output_sizes(), Err(1));
    }

    #[test]
    fn same_padding_and_selective_pooling() {
        // The guide's compressed CNN: Conv16-Conv16-Pool-Conv32-Pool-Dense32-Dense10.
        let cnn = Cnn {
            input_hwc: [28, 28, 1],
            conv_channels: vec![16, 16, 32],
            pool_after: vec![false, true, true],
            kernel: 3,
            padding: Padding::Same,
            pool: 2,
            dense: vec![32],
            classes: 10,
        };
        assert_eq!(
            cnn.conv_output_sizes(),
            Ok(vec![(28, 28), (14, 14), (7, 7)])
        );
        let fc1 = cnn
            .tensors()
            .into_iter()
            .find(|t| t.name == "fc1.weight")
            .unwrap();
        assert_eq!(fc1.shape, vec![32, 7 * 7 * 32]);
    }

    /// Labelled images reach the input at its size when `[data]` says how, with its channels
    /// and within its classes; the samples come out NCHW at the model's size.
    #[test]
    fn labelled_images_must_fit_channels_size_and_classes() {
        use crate::data::{DataSource, DataSpec, Resize};
        let digits = |resize| {
            crate::data::load(&DataSpec {
                source: DataSource::Digits,
                shape: None,
                scale: 16.0,
                test_fraction: 0.2,
                seed: 0,
                resize,
            })
            .unwrap()
        };
        let sized = |h: usize| Cnn {
            input_hwc: [h, h, 1],
            conv_channels: vec![4],
            pool_after: vec![true],
            kernel: 3,
            padding: Padding::Valid,
            pool: 2,
            dense: vec![],
            classes: 10,
        };
        let d = digits(Resize::Bilinear);
        assert_eq!(sized(28).check_dataset(&d), Ok(()));
        let x = sized(28).dataset_inputs(&d, &d.test[..3]).unwrap();
        assert_eq!(x.len(), 3 * 28 * 28);
        assert!(sized(28).describe_data(&d).ends_with("8x8x1 bilinear to 28x28"));
        let unset = sized(28).check_dataset(&digits(Resize::None)).unwrap_err();
        assert!(unset.message.contains("`resize` is not set"), "{unset:?}");
        assert_eq!(unset.field, Some("input"));
        let pad = sized(6).check_dataset(&digits(Resize::Pad)).unwrap_err();
        assert!(pad.message.contains("padding cannot shrink"), "{pad:?}");
        let rgb = Cnn {
            input_hwc: [8, 8, 3],
            ..sized(8)
        };
        let channels = rgb.check_dataset(&d).unwrap_err();
        assert!(channels.message.contains("1 channel(s)"), "{channels:?}");
        let few = Cnn {
            classes: 5,
            ..sized(8)
        };
        assert!(few.check_dataset(&d).unwrap_err().message.contains("labels up to 9"));
    }
}
