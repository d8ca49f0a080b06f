//! Piecewise-linear activations (ReLU, HardSigmoid, HardSwish) as one pass over f32 values
//! on the CPU: written as candle ops, HardSwish is an affine map, a clamp and a product, each
//! a full pass that allocates its own output. The same [`Activation`] is applied in place by
//! the fused convolution kernels at the end of each output plane.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, InplaceOp1, Layout, Shape, Tensor};

use crate::onnx::graph::{Attr, Node};
use rayon::prelude::*;

/// Values per parallel task: large enough that scheduling costs nothing next to the work.
const CHUNK: usize = 1 << 14;

/// An activation applied to each value on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Activation {
    Identity,
    Relu,
    /// `clamp(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x * clamp(alpha * x + beta, 0, 1)`; ONNX HardSwish is alpha 1/6, beta 1/2.
    HardSwish {
        alpha: f32,
        beta: f32,
    },
    /// `min(max(x, lo), hi)` (ReLU6 is 0, 6); an absent bound is infinite.
    Clip {
        lo: f32,
        hi: f32,
    },
}

impl Activation {
    /// ONNX HardSwish.
    pub const HARD_SWISH: Activation = Activation::HardSwish {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };

    /// The activation's name as a step's op shows it.
    pub fn op_name(&self) -> &'static str {
        match self {
            Activation::Identity => "Identity",
            Activation::Relu => "Relu",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::HardSwish { .. } => "HardSwish",
            Activation::Clip { .. } => "Clip",
        }
    }

    /// Applies the activation to every value of `v` in place.
    pub fn apply_slice(&self, v: &mut [f32]) {
        match *self {
            Activation::Identity => {}
            // One match outside the loop so each loop vectorizes on its own.
            Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Activation::HardSigmoid { alpha, beta } => v
                .iter_mut()
                .for_each(|x| *x = (alpha * *x + beta).clamp(0.0, 1.0)),
            Activation::HardSwish { alpha, beta } => v
                .iter_mut()
                .for_each(|x| *x *= (alpha * *x + beta).clamp(0.0, 1.0)),
            // max/min, not clamp: clamp panics on NaN bounds.
            Activation::Clip { lo, hi } => v.iter_mut().for_each(|x| *x = x.max(lo).min(hi)),
        }
    }

    /// The activation as candle ops, for dtypes and devices the one-pass kernel does not take.
    pub fn composite(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match *self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::HardSigmoid { alpha, beta } => {
                x.affine(alpha as f64, beta as f64)?.clamp(0f64, 1f64)
            }
            Activation::HardSwish { alpha, beta } => {
                x.mul(&x.affine(alpha as f64, beta as f64)?.clamp(0f64, 1f64)?)
            }
            Activation::Clip { lo, hi } => x.maximum(lo as f64)?.minimum(hi as f64),
        }
    }
}

/// The activation as one candle op over a whole f32 CPU tensor (one pass, one output).
pub(crate) struct OnePass(pub Activation);

impl CustomOp1 for OnePass {
    fn name(&self) -> &'static str {
        "activation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: f32 only, got {:?}", self.0.op_name(), storage.dtype())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: the input is not contiguous", self.0.op_name())
        };
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        let act = self.0;
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| {
                o.copy_from_slice(s);
                act.apply_slice(o);
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Runs `act` on `x`: one pass on f32 CPU tensors, candle ops otherwise.
pub(crate) fn run(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&OnePass(act))
    } else {
        act.composite(x)
    }
}

/// The name of the attribute the fusion pass puts on a Conv that absorbed its activation:
/// `[kind, a, b]`: 1 Relu, 2 HardSigmoid (alpha, beta), 3 HardSwish (alpha, beta), 4 Clip
/// (min, max). Not an ONNX attribute:
/// it is added after validation and read only by the Conv lowering.
pub(crate) const FUSED_ATTR: &str = "inferbench:activation";

impl Activation {
    /// The activation a node computes, when it is one a Conv can absorb (Clip, whose bounds
    /// may be inputs, is read by the fusion pass).
    pub fn of_node(node: &Node) -> Option<Activation> {
        if !node.domain.is_empty() {
            return None;
        }
        let float = |name: &str, default: f32| match node.attr(name) {
            Some(Attr::Float(v)) => Some(*v),
            None => Some(default),
            Some(_) => None,
        };
        match node.op.as_str() {
            "Relu" => Some(Activation::Relu),
            "HardSwish" => Some(Activation::HARD_SWISH),
            "HardSigmoid" => Some(Activation::HardSigmoid {
                alpha: float("alpha", 0.2)?,
                beta: float("beta", 0.5)?,
            }),
            _ => None,
        }
    }

    /// The activation as the value of [`FUSED_ATTR`].
    pub fn to_attr(self) -> Attr {
        let (kind, a, b) = match self {
            Activation::Identity => (0.0, 0.0, 0.0),
            Activation::Relu => (1.0, 0.0, 0.0),
            Activation::HardSigmoid { alpha, beta } => (2.0, alpha, beta),
            Activation::HardSwish { alpha, beta } => (3.0, alpha, beta),
            Activation::Clip { lo, hi } => (4.0, lo, hi),
        };
        Attr::Floats(vec![kind, a, b])
    }

    /// The activation a fused Conv node carries ([`Activation::Identity`] when none).
    pub fn fused_into(node: &Node) -> Activation {
        match node.attr(FUSED_ATTR) {
            Some(Attr::Floats(v)) if v.len() == 3 => match v[0] as i32 {
                1 => Activation::Relu,
                2 => Activation::HardSigmoid {
                    alpha: v[1],
                    beta: v[2],
                },
                3 => Activation::HardSwish {
                    alpha: v[1],
                    beta: v[2],
                },
                4 => Activation::Clip { lo: v[1], hi: v[2] },
                _ => Activation::Identity,
            },
            _ => Activation::Identity,
        }
    }
}

/// What a convolution does to its raw output: add the bias and apply the activation. On
/// f32 CPU tensors both happen in place in one pass; otherwise as candle ops.
pub(crate) struct Epilogue {
    /// `[1, m, 1, ...]`, for the candle-op path.
    bias: Option<Tensor>,
    /// The same values, for the in-place pass.
    bias_values: Vec<f32>,
    act: Activation,
    in_place: bool,
}

impl Epilogue {
    pub fn new(
        bias: Option<Tensor>,
        act: Activation,
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Self> {
        let in_place = device.is_cpu() && dtype == DType::F32;
        let bias_values = match (&bias, in_place) {
            (Some(b), true) => b.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            _ => Vec::new(),
        };
        Ok(Epilogue {
            bias,
            bias_values,
            act,
            in_place,
        })
    }

    pub fn apply(&self, y: Tensor) -> candle_core::Result<Tensor> {
        if self.bias.is_none() && self.act == Activation::Identity {
            return Ok(y);
        }
        if self.in_place && y.dtype() == DType::F32 && y.device().is_cpu() {
            // A fresh convolution output: nothing else holds its storage.
            let y = y.contiguous()?;
            y.inplace_op1(&BiasActivation {
                bias: &self.bias_values,
                act: self.act,
            })?;
            return Ok(y);
        }
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        self.act.composite(&y)
    }
}

/// Adds a per-channel bias (axis 1) and applies an activation, in place.
struct BiasActivation<'a> {
    bias: &'a [f32],
    act: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("bias and activation: f32 only, got {:?}", storage.dtype())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("bias and activation: the output is not contiguous")
        };
        let dims = layout.dims();
        let channels = dims.get(1).copied().unwrap_or(1).max(1);
        let plane: usize = dims.iter().skip(2).product::<usize>().max(1);
        if !self.bias.is_empty() && self.bias.len() != channels {
            candle_core::bail!(
                "bias and activation: {} biases for {channels} channels",
                self.bias.len()
            )
        }
        let (bias, act) = (self.bias, self.act);
        data[start..end]
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, v)| {
                if let Some(&b) = bias.get(p % channels) {
                    v.iter_mut().for_each(|x| *x += b);
                }
                act.apply_slice(v);
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_pass_matches_the_candle_ops() {
        let x = Tensor::randn(0f32, 4f32, (3, 5, 7, 11), &Device::Cpu).unwrap();
        for act in [
            Activation::Relu,
            Activation::HARD_SWISH,
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Activation::Clip { lo: 0.0, hi: 6.0 },
        ] {
            let fast = run(act, &x).unwrap();
            let slow = act.composite(&x).unwrap();
            assert_eq!(fast.dims(), slow.dims());
            let diff = crate::onnx::ops::max_abs_diff(&fast, &slow);
            assert!(diff < 1e-6, "{act:?}: max difference {diff}");
        }
    }

    #[test]
    fn one_pass_reads_a_strided_input_in_logical_order() {
        let x = Tensor::arange(-6f32, 6f32, &Device::Cpu)
            .unwrap()
            .reshape((3, 4))
            .unwrap()
            .t()
            .unwrap();
        let y = run(Activation::Relu, &x).unwrap();
        assert_eq!(
            y.to_vec2::<f32>().unwrap(),
            x.relu().unwrap().to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn epilogue_in_place_matches_the_candle_ops() {
        let dev = Device::Cpu;
        let y = Tensor::randn(0f32, 3f32, (2, 3, 4, 5), &dev).unwrap();
        let bias = Tensor::new(&[0.5f32, -1.0, 2.0], &dev)
            .unwrap()
            .reshape((1, 3, 1, 1))
            .unwrap();
        let act = Activation::HARD_SWISH;
        let want = act.composite(&y.broadcast_add(&bias).unwrap()).unwrap();
        let fast = Epilogue::new(Some(bias), act, &dev, DType::F32).unwrap();
        // A copy: the in-place pass must not be seen through `y`.
        let got = fast.apply(y.copy().unwrap()).unwrap();
        let diff = crate::onnx::ops::max_abs_diff(&got, &want);
        assert!(diff < 1e-6, "max difference {diff}");
    }

    #[test]
    fn fused_attribute_round_trips() {
        for act in [
            Activation::Relu,
            Activation::HARD_SWISH,
            Activation::HardSigmoid {
                alpha: 0.25,
                beta: 0.4,
            },
            Activation::Clip { lo: 0.0, hi: 6.0 },
            Activation::Clip {
                lo: f32::NEG_INFINITY,
                hi: 1.5,
            },
        ] {
            let node = Node {
                name: "c".into(),
                op: "Conv".into(),
                domain: String::new(),
                inputs: vec![],
                outputs: vec![],
                attrs: vec![(FUSED_ATTR.into(), act.to_attr())],
            };
            assert_eq!(Activation::fused_into(&node), act);
        }
    }
}
