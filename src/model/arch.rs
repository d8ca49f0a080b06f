//! Built-in architectures as plain data: shapes, parameter counts and FLOPs, no candle.
//!
//! Tensor names and layouts follow PyTorch so weights exported from it load as they are:
//! `conv{i}.weight` is `[out, in, k, k]`, `fc{j}.weight` is `[out, in]`, biases are `[out]`,
//! layers numbered from 1, the last `fc` being the classifier. Images are NCHW and flatten
//! in C, H, W order.

use serde::{Deserialize, Serialize};

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
        }
    }

    pub fn classes(&self) -> usize {
        match self {
            Architecture::Mlp { classes, .. } | Architecture::Cnn { classes, .. } => *classes,
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
        }
    }

    /// Every weight tensor the architecture expects, in a fixed order.
    pub fn tensors(&self) -> Vec<TensorShape> {
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
        }
    }

    /// Multiply-adds counted as two FLOPs, for one sample; pooling and ReLU not counted.
    pub fn flops_per_sample(&self) -> u64 {
        let mut flops = 0u64;
        if let Architecture::Cnn {
            input_hwc: [_, _, c],
            conv_channels,
            kernel,
            padding,
            ..
        } = self
        {
            let sizes = self.conv_output_sizes().unwrap_or_default();
            let (h0, w0) = match self {
                Architecture::Cnn {
                    input_hwc: [h, w, _],
                    ..
                } => (*h, *w),
                _ => unreachable!(),
            };
            let (mut h_in, mut w_in) = (h0, w0);
            let mut cin = *c;
            for (i, &cout) in conv_channels.iter().enumerate() {
                // Output size of the convolution itself (before pooling).
                let (ho, wo) = match padding {
                    Padding::Valid => (h_in + 1 - kernel, w_in + 1 - kernel),
                    Padding::Same => (h_in, w_in),
                };
                flops += 2 * (kernel * kernel * cin * cout * ho * wo) as u64;
                if let Some(&(h, w)) = sizes.get(i) {
                    (h_in, w_in) = (h, w);
                }
                cin = cout;
            }
        }
        let (hidden, classes) = self.dense_widths();
        let mut fin = self.flat_features();
        for &fout in hidden.iter().chain(std::iter::once(&classes)) {
            flops += 2 * (fin * fout) as u64;
            fin = fout;
        }
        flops
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
