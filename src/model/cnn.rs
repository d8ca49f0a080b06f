//! Built-in architectures as plain data: shapes, parameter counts and FLOPs, no candle.
//!
//! Tensor names and layouts follow PyTorch so weights exported from it load as they are:
//! `conv{i}.weight` is `[out, in, k, k]`, `fc{j}.weight` is `[out, in]`, biases are `[out]`,
//! layers numbered from 1, the last `fc` being the classifier. Images are NCHW and flatten
//! in C, H, W order.

use serde::{Deserialize, Serialize};

use crate::schema::{LayerKind, LayerSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: each convolution shrinks the image by `kernel - 1`.
    Valid,
    /// Zero padding of `kernel / 2`: the image keeps its size (odd kernels only).
    Same,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum Architecture {
    /// Fully connected: `input_size -> hidden... -> classes`, ReLU between layers.
    Mlp {
        input_size: usize,
        hidden: Vec<usize>,
        classes: usize,
    },
    /// Convolutions (ReLU, optional 2x2-style max pooling after each), then dense layers.
    Cnn {
        /// Height, width, channels of one input image.
        input_hwc: [usize; 3],
        conv_channels: Vec<usize>,
        /// `pool_after[i]`: whether convolution `i` is followed by max pooling.
        pool_after: Vec<bool>,
        kernel: usize,
        padding: Padding,
        pool: usize,
        dense: Vec<usize>,
        classes: usize,
    },
    /// A BERT encoder (HuggingFace layout) with mean pooling and L2 normalisation, as
    /// sentence-transformers computes sentence embeddings. Every layer keeps the same number
    /// of attention heads and FFN neurons (fewer after structured pruning); a head keeps its
    /// `head_dim`, so `heads * head_dim` may be less than `hidden`.
    Bert {
        vocab: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        head_dim: usize,
        intermediate: usize,
        max_positions: usize,
        type_vocab: usize,
        layer_norm_eps: f64,
        /// Tokens per input: every sentence is padded (pad id 0) or truncated to this.
        seq_len: usize,
    },
}

/// Tensors a HuggingFace BERT checkpoint may hold that the encoder does not use: the pooler
/// (sentence-transformers pools by the mean instead) and the position-id buffer.
pub fn bert_ignored_tensor(name: &str) -> bool {
    name.starts_with("pooler.") || name == "embeddings.position_ids"
}

/// Where a layer's weights sit in the network, for size and FLOP accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorShape {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Architecture {
    /// Shape of one input sample, without the batch dimension (`[C, H, W]` or `[features]`).
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            Architecture::Mlp { input_size, .. } => vec![*input_size],
            Architecture::Cnn {
                input_hwc: [h, w, c],
                ..
            } => vec![*c, *h, *w],
            Architecture::Bert { seq_len, .. } => vec![*seq_len],
        }
    }

    /// Output width: classes, or the embedding width of a `bert`.
    pub fn classes(&self) -> usize {
        match self {
            Architecture::Mlp { classes, .. } | Architecture::Cnn { classes, .. } => *classes,
            Architecture::Bert { hidden, .. } => *hidden,
        }
    }

    /// `mlp`, `cnn` or `bert`, as a suite names it.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Mlp { .. } => "mlp",
            Architecture::Cnn { .. } => "cnn",
            Architecture::Bert { .. } => "bert",
        }
    }

    pub fn is_bert(&self) -> bool {
        matches!(self, Architecture::Bert { .. })
    }

    /// Whether the tensor `name` is a weight matrix applied by a matmul (what quantize and
    /// magnitude pruning act on): every `.weight` of an mlp or cnn; a bert's linear layers
    /// (not its embedding tables or LayerNorm scales).
    pub fn is_matmul_weight(&self, name: &str) -> bool {
        match self {
            Architecture::Bert { .. } => {
                name.starts_with("encoder.")
                    && (name.ends_with("dense.weight")
                        || name.ends_with("query.weight")
                        || name.ends_with("key.weight")
                        || name.ends_with("value.weight"))
            }
            _ => name.ends_with(".weight"),
        }
    }

    /// Spatial size `(h, w)` after each convolution block, or the index of the first
    /// convolution whose output would be empty.
    pub fn conv_output_sizes(&self) -> Result<Vec<(usize, usize)>, usize> {
        let Architecture::Cnn {
            input_hwc: [h0, w0, _],
            conv_channels,
            pool_after,
            kernel,
            padding,
            pool,
            ..
        } = self
        else {
            return Ok(Vec::new());
        };
        let (mut h, mut w) = (*h0, *w0);
        let mut sizes = Vec::with_capacity(conv_channels.len());
        for i in 0..conv_channels.len() {
            if *padding == Padding::Valid {
                if h < *kernel || w < *kernel {
                    return Err(i);
                }
                h = h - kernel + 1;
                w = w - kernel + 1;
            }
            if pool_after.get(i).copied().unwrap_or(true) && *pool > 1 {
                h /= pool;
                w /= pool;
            }
            if h == 0 || w == 0 {
                return Err(i);
            }
            sizes.push((h, w));
        }
        Ok(sizes)
    }

    /// Width of the first dense layer's input.
    fn flat_features(&self) -> usize {
        match self {
            Architecture::Bert { hidden, .. } => *hidden,
            Architecture::Mlp { input_size, .. } => *input_size,
            Architecture::Cnn {
                input_hwc,
                conv_channels,
                ..
            } => {
                let sizes = self.conv_output_sizes().unwrap_or_default();
                match (sizes.last(), conv_channels.last()) {
                    (Some((h, w)), Some(c)) => h * w * c,
                    _ => input_hwc.iter().product(),
                }
            }
        }
    }

    fn dense_widths(&self) -> (&[usize], usize) {
        match self {
            Architecture::Mlp {
                hidden, classes, ..
            } => (hidden, *classes),
            Architecture::Cnn { dense, classes, .. } => (dense, *classes),
            Architecture::Bert { hidden, .. } => (&[], *hidden),
        }
    }

    /// A bert's tensors, HuggingFace names (`embeddings.*`, `encoder.layer.{i}.*`).
    fn bert_tensors(&self) -> Vec<TensorShape> {
        let Architecture::Bert {
            vocab,
            hidden,
            layers,
            heads,
            head_dim,
            intermediate,
            max_positions,
            type_vocab,
            ..
        } = self
        else {
            return Vec::new();
        };
        let (h, a, i) = (*hidden, heads * head_dim, *intermediate);
        let t = |name: String, shape: Vec<usize>| TensorShape { name, shape };
        let mut out = vec![
            t("embeddings.word_embeddings.weight".into(), vec![*vocab, h]),
            t(
                "embeddings.position_embeddings.weight".into(),
                vec![*max_positions, h],
            ),
            t(
                "embeddings.token_type_embeddings.weight".into(),
                vec![*type_vocab, h],
            ),
            t("embeddings.LayerNorm.weight".into(), vec![h]),
            t("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        for l in 0..*layers {
            let p = format!("encoder.layer.{l}.");
            for qkv in ["query", "key", "value"] {
                out.push(t(format!("{p}attention.self.{qkv}.weight"), vec![a, h]));
                out.push(t(format!("{p}attention.self.{qkv}.bias"), vec![a]));
            }
            out.push(t(format!("{p}attention.output.dense.weight"), vec![h, a]));
            out.push(t(format!("{p}attention.output.dense.bias"), vec![h]));
            out.push(t(format!("{p}attention.output.LayerNorm.weight"), vec![h]));
            out.push(t(format!("{p}attention.output.LayerNorm.bias"), vec![h]));
            out.push(t(format!("{p}intermediate.dense.weight"), vec![i, h]));
            out.push(t(format!("{p}intermediate.dense.bias"), vec![i]));
            out.push(t(format!("{p}output.dense.weight"), vec![h, i]));
            out.push(t(format!("{p}output.dense.bias"), vec![h]));
            out.push(t(format!("{p}output.LayerNorm.weight"), vec![h]));
            out.push(t(format!("{p}output.LayerNorm.bias"), vec![h]));
        }
        out
    }

    /// Every weight tensor the architecture expects, in a fixed order.
    pub fn tensors(&self) -> Vec<TensorShape> {
        if self.is_bert() {
            return self.bert_tensors();
        }
        let mut out = Vec::new();
        if let Architecture::Cnn {
            input_hwc: [_, _, c],
            conv_channels,
            kernel,
            ..
        } = self
        {
            let mut cin = *c;
            for (i, &cout) in conv_channels.iter().enumerate() {
                out.push(TensorShape {
                    name: format!("conv{}.weight", i + 1),
                    shape: vec![cout, cin, *kernel, *kernel],
                });
                out.push(TensorShape {
                    name: format!("conv{}.bias", i + 1),
                    shape: vec![cout],
                });
                cin = cout;
            }
        }
        let (hidden, classes) = self.dense_widths();
        let mut fin = self.flat_features();
        for (j, &fout) in hidden.iter().chain(std::iter::once(&classes)).enumerate() {
            out.push(TensorShape {
                name: format!("fc{}.weight", j + 1),
                shape: vec![fout, fin],
            });
            out.push(TensorShape {
                name: format!("fc{}.bias", j + 1),
                shape: vec![fout],
            });
            fin = fout;
        }
        out
    }

    pub fn param_count(&self) -> usize {
        self.tensors()
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// Units (output channels of each convolution, then neurons of each hidden dense layer)
    /// that structured pruning may remove; the classifier's outputs are never removed.
    pub fn prunable_units(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        if let Architecture::Bert {
            layers,
            heads,
            intermediate,
            ..
        } = self
        {
            for l in 0..*layers {
                out.push((format!("encoder.layer.{l}.attention"), *heads));
                out.push((format!("encoder.layer.{l}.intermediate"), *intermediate));
            }
            return out;
        }
        if let Architecture::Cnn { conv_channels, .. } = self {
            for (i, &c) in conv_channels.iter().enumerate() {
                out.push((format!("conv{}", i + 1), c));
            }
        }
        let (hidden, _) = self.dense_widths();
        for (j, &n) in hidden.iter().enumerate() {
            out.push((format!("fc{}", j + 1), n));
        }
        out
    }

    /// The architecture after structured pruning at `sparsity`: every convolution and hidden
    /// dense layer keeps `max(1, round(units * (1 - sparsity)))` units.
    pub fn structured(&self, sparsity: f64) -> Architecture {
        let keep = |n: usize| kept_units(n, sparsity);
        match self.clone() {
            Architecture::Mlp {
                input_size,
                hidden,
                classes,
            } => Architecture::Mlp {
                input_size,
                hidden: hidden.into_iter().map(keep).collect(),
                classes,
            },
            Architecture::Cnn {
                input_hwc,
                conv_channels,
                pool_after,
                kernel,
                padding,
                pool,
                dense,
                classes,
            } => Architecture::Cnn {
                input_hwc,
                conv_channels: conv_channels.into_iter().map(keep).collect(),
                pool_after,
                kernel,
                padding,
                pool,
                dense: dense.into_iter().map(keep).collect(),
                classes,
            },
            Architecture::Bert {
                vocab,
                hidden,
                layers,
                heads,
                head_dim,
                intermediate,
                max_positions,
                type_vocab,
                layer_norm_eps,
                seq_len,
            } => Architecture::Bert {
                vocab,
                hidden,
                layers,
                heads: keep(heads),
                head_dim,
                intermediate: keep(intermediate),
                max_positions,
                type_vocab,
                layer_norm_eps,
                seq_len,
            },
        }
    }

    /// Multiply-adds counted as two FLOPs, for one sample; bias additions, ReLU and pooling
    /// comparisons not counted. The sum of [`Architecture::layers`]' FLOPs.
    pub fn flops_per_sample(&self) -> u64 {
        if let Architecture::Bert {
            hidden,
            layers,
            heads,
            head_dim,
            intermediate,
            seq_len,
            ..
        } = self
        {
            // Per token and layer: Q, K, V and the attention output (4 h*a), the FFN (2 h*i),
            // and the scores and weighted sum over seq_len positions (2 seq*a); embedding
            // lookups, softmax, LayerNorm, GELU and pooling not counted. Padding tokens are
            // computed like any other, so they count.
            let (h, a, i, s) = (*hidden, heads * head_dim, *intermediate, *seq_len);
            let per_token = 4 * h * a + 2 * h * i + 2 * s * a;
            return 2 * (per_token * s * layers) as u64;
        }
        self.layers().iter().map(|l| l.flops).sum()
    }

    /// The forward pass as the profiler times it, one step at a time, in order: each
    /// convolution (with its bias and ReLU), the max pooling after it when there is one, then
    /// each dense layer (flattening first, then bias and ReLU). Shapes are per sample.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let mut out = Vec::new();
        if let Architecture::Cnn {
            input_hwc: [h0, w0, c0],
            conv_channels,
            pool_after,
            kernel,
            padding,
            pool,
            ..
        } = self
        {
            let (mut h, mut w, mut cin) = (*h0, *w0, *c0);
            for (i, &cout) in conv_channels.iter().enumerate() {
                let (ho, wo) = match padding {
                    Padding::Valid => (
                        (h + 1).saturating_sub(*kernel),
                        (w + 1).saturating_sub(*kernel),
                    ),
                    Padding::Same => (h, w),
                };
                out.push(LayerSpec {
                    name: format!("conv{}", i + 1),
                    kind: LayerKind::Conv,
                    input: vec![cin, h, w],
                    output: vec![cout, ho, wo],
                    // Each output value: kernel x kernel x cin multiply-adds.
                    flops: 2 * (kernel * kernel * cin * cout * ho * wo) as u64,
                    params: cout * cin * kernel * kernel + cout,
                });
                (h, w) = (ho, wo);
                if pool_after.get(i).copied().unwrap_or(true) && *pool > 1 {
                    let (hp, wp) = (h / pool, w / pool);
                    out.push(LayerSpec {
                        name: format!("pool{}", i + 1),
                        kind: LayerKind::Pool,
                        input: vec![cout, h, w],
                        output: vec![cout, hp, wp],
                        flops: 0,
                        params: 0,
                    });
                    (h, w) = (hp, wp);
                }
                cin = cout;
            }
        }
        let (hidden, classes) = self.dense_widths();
        let mut fin = self.flat_features();
        for (j, &fout) in hidden.iter().chain(std::iter::once(&classes)).enumerate() {
            out.push(LayerSpec {
                name: format!("fc{}", j + 1),
                kind: LayerKind::Dense,
                input: vec![fin],
                output: vec![fout],
                flops: 2 * (fin * fout) as u64,
                params: fin * fout + fout,
            });
            fin = fout;
        }
        out
    }
}

/// Units a layer of `n` keeps when structured pruning removes the fraction `sparsity`.
pub fn kept_units(n: usize, sparsity: f64) -> usize {
    ((n as f64 * (1.0 - sparsity)).round() as usize).clamp(1, n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Keras MNIST CNN of the compression guide: Conv32-Pool-Conv64-Pool-Dense64-Dense10.
    pub fn keras_cnn() -> Architecture {
        Architecture::Cnn {
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
        let mlp = Architecture::Mlp {
            input_size: 784,
            hidden: vec![128],
            classes: 10,
        };
        assert_eq!(mlp.flops_per_sample(), 2 * (784 * 128 + 128 * 10));
        assert_eq!(mlp.param_count(), 784 * 128 + 128 + 128 * 10 + 10);
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

    /// `same` padding, a convolution without pooling, and an MLP: by hand.
    #[test]
    fn compressed_cnn_and_mlp_layers_by_hand() {
        let cnn = Architecture::Cnn {
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

        let mlp = Architecture::Mlp {
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
    }

    /// all-MiniLM-L6-v2's shape: 22,565,376 parameters without the pooler (as its
    /// model.safetensors holds them, 22,713,216 with the pooler's 147,840).
    #[test]
    fn minilm_shapes_parameters_and_flops() {
        let bert = Architecture::Bert {
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
        };
        assert_eq!(bert.param_count(), 22_565_376);
        assert_eq!(bert.tensors().len(), 5 + 6 * 16);
        assert!(bert.is_matmul_weight("encoder.layer.0.attention.self.query.weight"));
        assert!(bert.is_matmul_weight("encoder.layer.5.output.dense.weight"));
        assert!(!bert.is_matmul_weight("encoder.layer.0.output.LayerNorm.weight"));
        assert!(!bert.is_matmul_weight("embeddings.word_embeddings.weight"));
        // Per token and layer 4*384*384 + 2*384*1536 + 2*128*384 multiply-adds.
        let per_token = 4 * 384 * 384 + 2 * 384 * 1536 + 2 * 128 * 384;
        assert_eq!(bert.flops_per_sample(), 2 * (per_token * 128 * 6) as u64);
        // Structured pruning keeps the head size and the hidden size.
        let half = bert.structured(0.5);
        let Architecture::Bert {
            heads,
            head_dim,
            intermediate,
            hidden,
            ..
        } = &half
        else {
            panic!()
        };
        assert_eq!(
            (*heads, *head_dim, *intermediate, *hidden),
            (6, 32, 768, 384)
        );
        let q = half
            .tensors()
            .into_iter()
            .find(|t| t.name == "encoder.layer.0.attention.self.query.weight")
            .unwrap();
        assert_eq!(q.shape, vec![192, 384]);
        assert_eq!(half.prunable_units().len(), 12);
    }

    #[test]
    fn too_small_an_image_is_reported_at_the_first_empty_conv() {
        let mut cnn = keras_cnn();
        if let Architecture::Cnn { input_hwc, .. } = &mut cnn {
            *input_hwc = [6, 6, 1];
        }
        // 6 -conv-> 4 -pool-> 2 -conv-> (2 < 3) empty
        assert_eq!(cnn.conv_output_sizes(), Err(1));
    }

    #[test]
    fn same_padding_and_selective_pooling() {
        // The guide's compressed CNN: Conv16-Conv16-Pool-Conv32-Pool-Dense32-Dense10.
        let cnn = Architecture::Cnn {
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
}
