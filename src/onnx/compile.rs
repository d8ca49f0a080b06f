//! Graph -> plan: resolves the input shapes, lowers every node through the op table (shape
//! inference and weight preparation in one pass), folds nodes whose inputs are all known,
//! drops dead nodes and computes when each intermediate can be freed.

use std::collections::{HashMap, HashSet};

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use super::error::OnnxError;
use super::fuse;
use super::graph::{Dim, Graph, Node, ValueInfo};
use super::ops::{self, In, Lowered, Meta, NodeCtx, OpError, Operand};
use super::plan::{CompileReport, Plan, Port, Source, Step, StepInfo};
use super::validate;
use super::weights::DeviceWeights;

/// The dtype float tensors are held and computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    /// Float initializers and activations in f16 (inputs and outputs stay as the graph
    /// declares them, converted at the edges).
    F16,
}

impl Precision {
    /// The dtype ONNX `FLOAT` values are held in.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// The batch dimension (the first dimension of every input).
    pub batch: usize,
    /// Full shapes for inputs with symbolic dimensions, as in a suite's `input_shapes`; the
    /// first dimension is replaced by `batch`.
    pub input_shapes: HashMap<String, Vec<usize>>,
    pub device: Device,
    pub precision: Precision,
    /// Quantize MatMul/Gemm weights and Conv weights (im2col) to this block type.
    pub quantize: Option<GgmlDType>,
    /// Fold each BatchNormalization into the Conv before it (one step, fewer passes over
    /// memory). On by default; off to profile the graph node by node.
    pub fuse: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            batch: 1,
            input_shapes: HashMap::new(),
            device: Device::Cpu,
            precision: Precision::F32,
            quantize: None,
            fuse: true,
        }
    }
}

/// A value during compilation.
#[derive(Clone)]
struct Val {
    meta: Meta,
    src: ValSrc,
}

#[derive(Clone)]
enum ValSrc {
    /// Known at compile time; `weight` when it is a float tensor of more than one element.
    Const {
        t: Tensor,
        weight: bool,
    },
    Slot(usize),
}

/// The shape an input takes for `batch`, or what is missing.
pub fn resolve_input(
    info: &ValueInfo,
    batch: usize,
    overrides: &HashMap<String, Vec<usize>>,
) -> Result<Vec<usize>, OnnxError> {
    let err = |reason: String| OnnxError::InputShape {
        input: info.name.clone(),
        reason,
    };
    let given = overrides.get(&info.name);
    let dims = match (&info.dims, given) {
        (Some(d), _) => d.clone(),
        (None, Some(g)) => g.iter().map(|&v| Dim::Fixed(v)).collect(),
        (None, None) => {
            return Err(err(format!(
                "the graph gives no shape; set it with input_shapes = {{ {} = [...] }}",
                info.name
            )))
        }
    };
    if let Some(g) = given {
        if g.len() != dims.len() {
            return Err(err(format!(
                "input_shapes gives {} dimensions, the graph has {}",
                g.len(),
                dims.len()
            )));
        }
    }
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        let from_user = given.map(|g| g[i]);
        out.push(match (i, d, from_user) {
            (0, Dim::Fixed(n), _) if *n != batch => {
                return Err(err(format!(
                    "the graph fixes the batch dimension at {n}, the case asks for {batch}; export the model with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={{'{0}': {{0: 'batch'}}}}), or tf2onnx with a None batch dimension)",
                    info.name
                )))
            }
            (0, _, _) => batch,
            (_, Dim::Fixed(n), Some(u)) if *n != u => {
                return Err(err(format!(
                    "input_shapes gives {u} for dimension {i}, the graph fixes it at {n}"
                )))
            }
            (_, Dim::Fixed(n), _) => *n,
            (_, Dim::Symbolic(_), Some(u)) => u,
            (_, Dim::Symbolic(s), None) => {
                let label = if s.is_empty() { String::new() } else { format!(" (`{s}`)") };
                return Err(err(format!(
                    "dimension {i}{label} is symbolic; give the full shape with input_shapes = {{ {} = [...] }}",
                    info.name
                )));
            }
        });
    }
    Ok(out)
}

/// Compiles `graph` for `opts` (validating op support first), its weights made for this
/// plan alone.
pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<Plan, OnnxError> {
    validate::check_support(graph)?;
    let fused;
    let (graph, groups) = if opts.fuse {
        let (g, groups) = fuse::fuse_graph(graph)?;
        fused = g;
        (&fused, groups)
    } else {
        (graph, HashMap::new())
    };
    let weights = DeviceWeights::new(graph, &opts.device, opts.precision, HashMap::new())?;
    compile_with(graph, opts, &weights, groups)
}

/// Compiles `graph` (already validated, and fused if it is to be) over weights made from it
/// beforehand, shared with other plans; `opts.device` and `opts.precision` are the
/// weights'. `groups` names the fused groups the graph holds.
pub(crate) fn compile_with(
    graph: &Graph,
    opts: &CompileOptions,
    weights: &DeviceWeights,
    groups: fuse::Groups,
) -> Result<Plan, OnnxError> {
    if opts.batch == 0 {
        return Err(OnnxError::InputShape {
            input: "*".into(),
            reason: "the batch size must be at least 1".into(),
        });
    }
    let opts = CompileOptions {
        device: weights.device.clone(),
        precision: weights.precision,
        ..opts.clone()
    };
    let mut b = Builder::new(graph, &opts, weights, groups)?;
    for node in &graph.nodes {
        b.lower(node)?;
    }
    b.finish()
}

/// The state of one compilation.
struct Builder<'g> {
    graph: &'g Graph,
    opts: &'g CompileOptions,
    weights: &'g DeviceWeights,
    float: DType,
    groups: fuse::Groups,
    env: HashMap<String, Val>,
    slots: usize,
    inputs: Vec<Port>,
    input_slots: Vec<usize>,
    input_cast: Vec<Option<DType>>,
    steps: Vec<Step>,
    report: CompileReport,
}

/// A node's inputs as its compile function sees them, and what they cost.
struct Gathered {
    ins: Vec<Option<In>>,
    args: Vec<usize>,
    weight_bytes: usize,
    params: usize,
}

impl<'g> Builder<'g> {
    /// Initializers are the weights' device tensors (floats in the plan's float dtype);
    /// inputs get their resolved shapes and the first slots.
    fn new(
        graph: &'g Graph,
        opts: &'g CompileOptions,
        weights: &'g DeviceWeights,
        groups: fuse::Groups,
    ) -> Result<Self, OnnxError> {
        let float = weights.precision.dtype();
        let mut env = HashMap::new();
        for name in graph.initializers.keys() {
            let t = weights.tensors.get(name).ok_or_else(|| {
                OnnxError::tensor(name, "is not among the weights made for the device")
            })?;
            env.insert(name.clone(), const_val(t.clone()));
        }
        let mut b = Builder {
            graph,
            opts,
            weights,
            float,
            groups,
            env,
            slots: 0,
            inputs: Vec::new(),
            input_slots: Vec::new(),
            input_cast: Vec::new(),
            steps: Vec::new(),
            report: CompileReport::default(),
        };
        for info in &graph.inputs {
            let shape = resolve_input(info, opts.batch, &opts.input_shapes)?;
            let cast = (info.dtype == DType::F32 && float != DType::F32).then_some(float);
            let meta = Meta::new(shape.clone(), cast.unwrap_or(info.dtype));
            let slot = b.new_slot(&info.name, meta);
            b.inputs.push(Port {
                name: info.name.clone(),
                shape,
                dtype: info.dtype,
            });
            b.input_slots.push(slot);
            b.input_cast.push(cast);
        }
        Ok(b)
    }

    fn new_slot(&mut self, name: &str, meta: Meta) -> usize {
        self.env.insert(
            name.to_string(),
            Val {
                meta,
                src: ValSrc::Slot(self.slots),
            },
        );
        self.slots += 1;
        self.slots - 1
    }

    fn gather(&self, node: &Node) -> Result<Gathered, OnnxError> {
        let mut g = Gathered {
            ins: Vec::new(),
            args: Vec::new(),
            weight_bytes: 0,
            params: 0,
        };
        for name in &node.inputs {
            if name.is_empty() {
                g.ins.push(None);
                continue;
            }
            let v = self
                .env
                .get(name)
                .ok_or_else(|| node_err(node, format!("input `{name}` is not defined")))?;
            let operand = match &v.src {
                ValSrc::Const { t, weight } => {
                    if *weight {
                        g.weight_bytes += t.elem_count() * t.dtype().size_in_bytes();
                        g.params += t.elem_count();
                    }
                    Operand::Const(t.clone())
                }
                ValSrc::Slot(s) => {
                    g.args.push(*s);
                    Operand::Arg(g.args.len() - 1)
                }
            };
            g.ins.push(Some(In {
                meta: v.meta.clone(),
                operand,
            }));
        }
        Ok(g)
    }

    /// Lowers one node: to constants when its inputs are all known, to a step otherwise.
    fn lower(&mut self, node: &Node) -> Result<(), OnnxError> {
        let def = ops::lookup(&node.op).ok_or_else(|| node_err(node, "unsupported op".into()))?;
        let g = self.gather(node)?;
        let mut ctx = NodeCtx {
            node,
            opset: self.graph.opset,
            inputs: g.ins,
            input_names: node.inputs.clone(),
            device: &self.opts.device,
            float: self.float,
            quantize: self.opts.quantize,
            weights: self.weights,
            quant_report: &mut self.report.quant,
        };
        let lowered = (def.compile)(&mut ctx).map_err(|OpError(e)| node_err(node, e))?;
        let (kernel, outputs, flops, own) = match lowered {
            Lowered::Constant(ts) => {
                self.report.folded_nodes += 1;
                return bind_consts(&mut self.env, node, ts).map_err(|e| node_err(node, e));
            }
            Lowered::Kernel {
                kernel,
                outputs,
                flops,
                weight_bytes,
            } => (kernel, outputs, flops, weight_bytes),
        };
        for m in &outputs {
            ops::check_elems(&m.shape).map_err(|OpError(e)| node_err(node, e))?;
        }
        if g.args.is_empty() {
            // Every input is known: run it now.
            let ts = kernel(&[]).map_err(|e| node_err(node, e.to_string()))?;
            let wanted = node.outputs.iter().filter(|o| !o.is_empty()).count();
            if ts.len() < wanted || ts.iter().zip(&outputs).any(|(t, m)| t.dims() != m.shape) {
                return Err(node_err(
                    node,
                    "internal error: folded outputs differ from inference".into(),
                ));
            }
            self.report.folded_nodes += 1;
            return bind_consts(&mut self.env, node, ts).map_err(|e| node_err(node, e));
        }
        let input_shapes = g
            .args
            .iter()
            .map(|s| slot_shape(&self.env, node, *s))
            .collect();
        let mut outs = Vec::new();
        for (k, name) in node.outputs.iter().enumerate() {
            if name.is_empty() {
                outs.push(None);
                continue;
            }
            let meta = outputs
                .get(k)
                .cloned()
                .ok_or_else(|| node_err(node, format!("output {k} (`{name}`) is not supported")))?;
            outs.push(Some(self.new_slot(name, meta)));
        }
        let (name, op) = self
            .groups
            .get(&node.name)
            .cloned()
            .unwrap_or_else(|| (node.name.clone(), node.op.clone()));
        let info = StepInfo {
            name,
            op,
            inputs: input_shapes,
            outputs: outputs
                .iter()
                .take(outs.len())
                .map(|m| m.shape.clone())
                .collect(),
            flops,
            weight_bytes: own.unwrap_or(g.weight_bytes),
            params: g.params,
        };
        self.steps.push(Step {
            info,
            args: g.args,
            outs,
            kernel,
            free: Vec::new(),
        });
        Ok(())
    }

    /// Binds the graph outputs, drops dead steps and schedules the frees.
    fn finish(mut self) -> Result<Plan, OnnxError> {
        self.report.fused = self.groups.values().map(|(n, _)| n.clone()).collect();
        self.report.fused.sort();
        let mut output_src = Vec::new();
        let mut outputs = Vec::new();
        for o in &self.graph.outputs {
            let v = self.env.get(&o.name).ok_or_else(|| {
                OnnxError::malformed(format!("graph output `{}` is never computed", o.name))
            })?;
            output_src.push(match &v.src {
                ValSrc::Const { t, .. } => Source::Const(t.clone()),
                ValSrc::Slot(s) => Source::Slot(*s),
            });
            let dtype = if v.meta.dtype == self.float && o.dtype == DType::F32 {
                DType::F32
            } else {
                v.meta.dtype
            };
            outputs.push(Port {
                name: o.name.clone(),
                shape: v.meta.shape.clone(),
                dtype,
            });
        }
        self.report.dead_nodes = schedule(&mut self.steps, &output_src);
        Ok(Plan {
            steps: self.steps,
            slots: self.slots,
            inputs: self.inputs,
            input_slots: self.input_slots,
            input_cast: self.input_cast,
            outputs,
            output_src,
            batch: self.opts.batch,
            device: self.opts.device.clone(),
            report: self.report,
        })
    }
}

fn node_err(node: &Node, reason: String) -> OnnxError {
    OnnxError::Node {
        node: node.name.clone(),
        op: node.op.clone(),
        reason,
    }
}

fn const_val(t: Tensor) -> Val {
    let weight = t.dtype().is_float() && t.elem_count() > 1;
    Val {
        meta: Meta::new(t.dims().to_vec(), t.dtype()),
        src: ValSrc::Const { t, weight },
    }
}

fn bind_consts(env: &mut HashMap<String, Val>, node: &Node, ts: Vec<Tensor>) -> Result<(), String> {
    for (k, name) in node.outputs.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let t = ts
            .get(k)
            .cloned()
            .ok_or_else(|| format!("output {k} (`{name}`) is not supported"))?;
        env.insert(name.clone(), const_val(t));
    }
    Ok(())
}

/// The shape of the value in `slot` (found by a scan of the node's inputs).
fn slot_shape(env: &HashMap<String, Val>, node: &Node, slot: usize) -> Vec<usize> {
    node.inputs
        .iter()
        .filter_map(|n| env.get(n))
        .find(|v| matches!(v.src, ValSrc::Slot(s) if s == slot))
        .map(|v| v.meta.shape.clone())
        .unwrap_or_default()
}

/// Drops steps nothing reads, then records for every slot the step after which it is
/// dead. Returns how many steps were dropped.
fn schedule(steps: &mut Vec<Step>, outputs: &[Source]) -> usize {
    let keep: HashSet<usize> = outputs
        .iter()
        .filter_map(|s| match s {
            Source::Slot(s) => Some(*s),
            Source::Const(_) => None,
        })
        .collect();
    let mut needed = keep.clone();
    let mut live = vec![false; steps.len()];
    for (i, step) in steps.iter_mut().enumerate().rev() {
        if step.outs.iter().flatten().any(|s| needed.contains(s)) {
            live[i] = true;
            needed.extend(step.args.iter().copied());
        }
        // Outputs nobody reads are not stored.
        for o in step.outs.iter_mut() {
            if o.is_some_and(|s| !needed.contains(&s)) {
                *o = None;
            }
        }
    }
    let before = steps.len();
    let mut i = 0;
    steps.retain(|_| {
        i += 1;
        live[i - 1]
    });
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        for &a in &step.args {
            last_use.insert(a, i);
        }
    }
    for (slot, i) in last_use {
        if !keep.contains(&slot) {
            steps[i].free.push(slot);
        }
    }
    for s in steps.iter_mut() {
        s.free.sort_unstable();
    }
    before - steps.len()
}
