//! The op table: one [`OpDef`] per supported ONNX op, grouped by family, one file each.
//! Adding an op is one compile function and one line in its family's `OPS`.
//!
//! A compile function sees the node, its inputs' shapes and dtypes, and the values of the
//! inputs that are constants (initializers or folded subgraphs). It checks the attributes,
//! infers the output shapes and returns a kernel: a closure over candle ops that receives
//! the node's non-constant inputs at run time. Weights are prepared once here (transposed,
//! folded, quantized), never in the kernel.

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use super::graph::{Attr, Node};
use super::recipe::QuantReport;
use super::weights::DeviceWeights;

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod depthwise;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod shape;
pub(crate) mod slice;

/// What a node's kernel runs: its non-constant inputs in, its outputs out.
pub(crate) type Kernel = Box<dyn Fn(&[&Tensor]) -> candle_core::Result<Vec<Tensor>> + Send + Sync>;

/// A value's shape (batch dimension included) and dtype, known at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl Meta {
    pub fn new(shape: Vec<usize>, dtype: DType) -> Self {
        Meta { shape, dtype }
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a kernel finds one of its inputs: captured at compile time, or the k-th run-time
/// argument.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Const(Tensor),
    Arg(usize),
}

impl Operand {
    pub fn get<'a>(&'a self, args: &[&'a Tensor]) -> &'a Tensor {
        match self {
            Operand::Const(t) => t,
            Operand::Arg(i) => args[*i],
        }
    }
    pub fn constant(&self) -> Option<&Tensor> {
        match self {
            Operand::Const(t) => Some(t),
            Operand::Arg(_) => None,
        }
    }
}

/// One input of the node being compiled.
#[derive(Debug, Clone)]
pub(crate) struct In {
    pub meta: Meta,
    pub operand: Operand,
}

/// A compile-time failure, with the reason shown to the user.
#[derive(Debug)]
pub(crate) struct OpError(pub String);

impl From<candle_core::Error> for OpError {
    fn from(e: candle_core::Error) -> Self {
        OpError(e.to_string())
    }
}
impl From<String> for OpError {
    fn from(s: String) -> Self {
        OpError(s)
    }
}
impl From<&str> for OpError {
    fn from(s: &str) -> Self {
        OpError(s.to_string())
    }
}

pub(crate) type OpResult<T> = Result<T, OpError>;

/// What compiling a node produced.
pub(crate) enum Lowered {
    /// A kernel to run, the outputs' shapes, and its cost.
    Kernel {
        kernel: Kernel,
        outputs: Vec<Meta>,
        /// Multiply-adds x 2 for the whole batch (Conv, ConvTranspose, Gemm, MatMul).
        flops: u64,
        /// Bytes of the weights as the kernel holds them (quantized ones as stored), when the
        /// op prepared them itself; otherwise the driver counts its initializer inputs.
        weight_bytes: Option<usize>,
    },
    /// Outputs known at compile time (Shape, Constant...).
    Constant(Vec<Tensor>),
}

impl Lowered {
    pub fn kernel(outputs: Vec<Meta>, kernel: Kernel) -> Self {
        Lowered::Kernel {
            kernel,
            outputs,
            flops: 0,
            weight_bytes: None,
        }
    }
    /// One output computed by `f` from the run-time arguments.
    pub fn single(
        meta: Meta,
        f: impl Fn(&[&Tensor]) -> candle_core::Result<Tensor> + Send + Sync + 'static,
    ) -> Self {
        Self::kernel(vec![meta], Box::new(move |args| Ok(vec![f(args)?])))
    }
    pub fn with_flops(mut self, f: u64) -> Self {
        if let Lowered::Kernel { flops, .. } = &mut self {
            *flops = f;
        }
        self
    }
    pub fn with_weight_bytes(mut self, b: usize) -> Self {
        if let Lowered::Kernel { weight_bytes, .. } = &mut self {
            *weight_bytes = Some(b);
        }
        self
    }
}

/// Everything a compile function may read.
pub(crate) struct NodeCtx<'a> {
    pub node: &'a Node,
    pub opset: i64,
    /// `None` for omitted optional inputs.
    pub inputs: Vec<Option<In>>,
    /// The names of the inputs (for quantization reports).
    pub input_names: Vec<String>,
    pub device: &'a Device,
    /// The dtype ONNX `FLOAT` values are computed in (f16 under the f16 recipe).
    pub float: DType,
    /// Quantize matmul and convolution weights to this type.
    pub quantize: Option<GgmlDType>,
    /// The plan's weights: the quantized ones given beforehand and the prepared matrices
    /// shared with other plans.
    pub weights: &'a DeviceWeights,
    pub quant_report: &'a mut QuantReport,
}

impl NodeCtx<'_> {
    pub fn input(&self, i: usize) -> OpResult<&In> {
        self.opt_input(i)
            .ok_or_else(|| OpError(format!("input {i} is missing")))
    }
    pub fn opt_input(&self, i: usize) -> Option<&In> {
        self.inputs.get(i).and_then(|x| x.as_ref())
    }
    pub fn meta(&self, i: usize) -> OpResult<&Meta> {
        Ok(&self.input(i)?.meta)
    }
    pub fn operand(&self, i: usize) -> OpResult<Operand> {
        Ok(self.input(i)?.operand.clone())
    }
    /// The value of input `i`, which must be known at compile time.
    pub fn constant(&self, i: usize) -> OpResult<Tensor> {
        match &self.input(i)?.operand {
            Operand::Const(t) => Ok(t.clone()),
            Operand::Arg(_) => Err(OpError(format!(
                "input {i} (`{}`) is computed at run time; only constant values are supported there",
                self.input_names.get(i).map(String::as_str).unwrap_or("")
            ))),
        }
    }
    pub fn const_i64s(&self, i: usize) -> OpResult<Vec<i64>> {
        Ok(self
            .constant(i)?
            .to_dtype(DType::I64)?
            .flatten_all()?
            .to_vec1()?)
    }
    pub fn const_f64s(&self, i: usize) -> OpResult<Vec<f64>> {
        Ok(self
            .constant(i)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?)
    }
    pub fn int(&self, name: &str, default: i64) -> OpResult<i64> {
        match self.node.attr(name) {
            None => Ok(default),
            Some(Attr::Int(v)) => Ok(*v),
            Some(other) => Err(wrong_kind(name, "an int", other)),
        }
    }
    pub fn float_attr(&self, name: &str, default: f32) -> OpResult<f32> {
        match self.node.attr(name) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(Attr::Int(v)) => Ok(*v as f32),
            Some(other) => Err(wrong_kind(name, "a float", other)),
        }
    }
    pub fn ints(&self, name: &str) -> OpResult<Option<Vec<i64>>> {
        match self.node.attr(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(v)) => Ok(Some(vec![*v])),
            Some(other) => Err(wrong_kind(name, "a list of ints", other)),
        }
    }
    pub fn string(&self, name: &str, default: &str) -> OpResult<String> {
        match self.node.attr(name) {
            None => Ok(default.to_string()),
            Some(Attr::Str(v)) => Ok(v.clone()),
            Some(other) => Err(wrong_kind(name, "a string", other)),
        }
    }
    /// Axes from the attribute (older opsets) or from input `i` (newer ones), if any.
    pub fn axes_attr_or_input(&self, i: usize) -> OpResult<Option<Vec<i64>>> {
        if let Some(a) = self.ints("axes")? {
            return Ok(Some(a));
        }
        match self.opt_input(i) {
            Some(_) => Ok(Some(self.const_i64s(i)?)),
            None => Ok(None),
        }
    }
}

fn wrong_kind(name: &str, want: &str, got: &Attr) -> OpError {
    OpError(format!("attribute `{name}` should be {want}, not {got:?}"))
}

/// `axis` in `-rank..rank` as an index.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r.max(1) {
        return Err(OpError(format!(
            "axis {axis} is out of range for rank {rank}"
        )));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// The most elements one value may have (8 GiB of f32). A shape past it comes from a
/// damaged or hostile file, and allocating it would abort the process instead of failing.
pub(crate) const MAX_ELEMS: usize = 1 << 31;

/// Refuses shapes over [`MAX_ELEMS`] before anything is allocated for them.
pub(crate) fn check_elems(shape: &[usize]) -> OpResult<()> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= MAX_ELEMS => Ok(()),
        _ => Err(OpError(format!("a value of shape {shape:?} is too large"))),
    }
}

/// NumPy-style broadcast of two shapes.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(OpError(format!("shapes {a:?} and {b:?} do not broadcast"))),
        };
    }
    Ok(out)
}

/// Checks that report unsupported attribute values (beyond the names in `attrs`).
pub(crate) type CheckFn = fn(&Node) -> Vec<String>;
pub(crate) type CompileFn = fn(&mut NodeCtx) -> OpResult<Lowered>;

/// One supported op.
pub(crate) struct OpDef {
    pub name: &'static str,
    /// Every attribute the compile function understands; any other is unsupported.
    pub attrs: &'static [&'static str],
    pub compile: CompileFn,
    pub check: CheckFn,
}

pub(crate) fn no_check(_: &Node) -> Vec<String> {
    Vec::new()
}

/// Short constructor for the family tables.
pub(crate) const fn op(
    name: &'static str,
    attrs: &'static [&'static str],
    compile: CompileFn,
) -> OpDef {
    OpDef {
        name,
        attrs,
        compile,
        check: no_check,
    }
}

pub(crate) const fn op_checked(
    name: &'static str,
    attrs: &'static [&'static str],
    compile: CompileFn,
    check: CheckFn,
) -> OpDef {
    OpDef {
        name,
        attrs,
        compile,
        check,
    }
}

const FAMILIES: &[&[OpDef]] = &[
    conv::OPS,
    elementwise::OPS,
    matmul::OPS,
    norm::OPS,
    pool::OPS,
    reduce::OPS,
    resize::OPS,
    shape::OPS,
    slice::OPS,
];

/// The op named `name` of the default domain, if supported.
pub(crate) fn lookup(name: &str) -> Option<&'static OpDef> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .find(|d| d.name == name)
}

/// Every supported op's name, sorted (for docs and error hints).
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<_> = FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .map(|d| d.name)
        .collect();
    v.sort_unstable();
    v
}

/// Reads an attribute that validation already checked (for check functions).
pub(crate) fn attr_str<'a>(node: &'a Node, name: &str) -> Option<&'a str> {
    match node.attr(name) {
        Some(Attr::Str(s)) => Some(s),
        _ => None,
    }
}
pub(crate) fn attr_int(node: &Node, name: &str) -> Option<i64> {
    match node.attr(name) {
        Some(Attr::Int(i)) => Some(*i),
        _ => None,
    }
}

/// The largest absolute difference between two tensors of one shape (tests of the kernels
/// against candle's own ops).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("tensors of one shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[2, 3, 4], &[4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(
            broadcast_shapes(&[2, 1, 4], &[3, 1]).unwrap(),
            vec![2, 3, 4]
        );
        assert_eq!(broadcast_shapes(&[], &[5]).unwrap(), vec![5]);
        assert!(broadcast_shapes(&[2, 3], &[4]).is_err());
    }

    #[test]
    fn axes_normalise_and_refuse_out_of_range() {
        assert_eq!(norm_axis(-1, 4).unwrap(), 3);
        assert_eq!(norm_axis(0, 0).unwrap(), 0);
        assert!(norm_axis(4, 4).is_err());
        assert!(norm_axis(-5, 4).is_err());
    }

    #[test]
    fn every_op_is_registered_once() {
        let ops = supported_ops();
        let mut dedup = ops.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(ops, dedup, "an op is registered twice");
        for name in [
            "Conv",
            "Gemm",
            "Softmax",
            "Resize",
            "LayerNormalization",
            "Where",
        ] {
            assert!(lookup(name).is_some(), "{name}");
        }
    }
}
