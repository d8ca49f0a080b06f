//! The compiled plan and its run loop: a list of steps over numbered value slots, each step
//! a prepared kernel. Running it parses nothing and decodes no weight; a slot is dropped as
//! soon as its last reader has run.

use candle_core::{DType, Device, Tensor};

use super::error::OnnxError;
use super::ops::Kernel;
use super::recipe::QuantReport;

/// One step of the plan: a node (or a fused group of nodes) as the per-layer profile sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// The node's name; fused groups join their nodes' names with `+`.
    pub name: String,
    /// The op, or ops joined with `+` for a fused group (`Conv+BatchNormalization`).
    pub op: String,
    /// Shapes of the run-time inputs, batch dimension included.
    pub inputs: Vec<Vec<usize>>,
    /// Shapes of the outputs, batch dimension included.
    pub outputs: Vec<Vec<usize>>,
    /// Multiply-adds x 2 for the whole batch (Conv, ConvTranspose, Gemm, MatMul; 0 otherwise).
    pub flops: u64,
    /// Bytes of the weights the step reads, as held in memory (quantized blocks as stored).
    pub weight_bytes: usize,
    /// Weight elements.
    pub params: usize,
}

impl StepInfo {
    /// Bytes the step moves under inferbench's traffic model: its weights read once, its
    /// run-time inputs read once and its outputs written once at `activation_bytes` per
    /// element (the whole batch).
    pub fn traffic_bytes(&self, activation_bytes: usize) -> u64 {
        let elems: usize = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .map(|s| s.iter().product::<usize>())
            .sum();
        (self.weight_bytes + elems * activation_bytes) as u64
    }

    /// A shape without its leading batch dimension, when it has one (`batch` leading).
    pub fn per_sample(shape: &[usize], batch: usize) -> Vec<usize> {
        match shape.split_first() {
            Some((&b, rest)) if b == batch => rest.to_vec(),
            _ => shape.to_vec(),
        }
    }
}

/// A graph input or output as the plan takes or gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    /// Batch dimension included (resolved: symbolic dimensions filled in).
    pub shape: Vec<usize>,
    /// What the caller passes or receives (the graph's dtype; f16 plans convert inside).
    pub dtype: DType,
}

pub(crate) struct Step {
    pub info: StepInfo,
    /// Slots of the run-time inputs, in the kernel's argument order.
    pub args: Vec<usize>,
    /// Slot of each kernel output (`None`: not used by anything).
    pub outs: Vec<Option<usize>>,
    pub kernel: Kernel,
    /// Slots whose last reader is this step.
    pub free: Vec<usize>,
}

pub(crate) enum Source {
    Slot(usize),
    Const(Tensor),
}

/// What compiling a graph cost and changed: folded nodes and the quantize recipe's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompileReport {
    /// Nodes computed at compile time (constant subgraphs, Shape chains).
    pub folded_nodes: usize,
    /// Nodes whose outputs nothing reads, left out.
    pub dead_nodes: usize,
    /// Groups of nodes fused into one step (Conv with its BatchNormalization).
    pub fused: Vec<String>,
    pub quant: QuantReport,
}

/// A compiled graph for one batch size on one device.
pub struct Plan {
    pub(crate) steps: Vec<Step>,
    pub(crate) slots: usize,
    pub(crate) inputs: Vec<Port>,
    pub(crate) input_slots: Vec<usize>,
    /// The dtype each input is converted to on entry (f16 plans), if any.
    pub(crate) input_cast: Vec<Option<DType>>,
    pub(crate) outputs: Vec<Port>,
    pub(crate) output_src: Vec<Source>,
    pub(crate) batch: usize,
    pub(crate) device: Device,
    pub(crate) report: CompileReport,
}

/// The values of one run in progress (for stepping through the plan one step at a time).
pub struct RunState {
    values: Vec<Option<Tensor>>,
}

impl Plan {
    pub fn batch(&self) -> usize {
        self.batch
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }
    pub fn report(&self) -> &CompileReport {
        &self.report
    }
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }
    pub fn steps(&self) -> impl Iterator<Item = &StepInfo> {
        self.steps.iter().map(|s| &s.info)
    }
    /// Multiply-adds x 2 of the whole batch.
    pub fn flops(&self) -> u64 {
        self.steps.iter().map(|s| s.info.flops).sum()
    }
    /// Bytes of the weights the steps hold (each counted once per step that reads it).
    pub fn weight_bytes(&self) -> usize {
        self.steps.iter().map(|s| s.info.weight_bytes).sum()
    }
    pub fn params(&self) -> usize {
        self.steps.iter().map(|s| s.info.params).sum()
    }

    /// Runs the whole plan.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, OnnxError> {
        let mut state = self.start(inputs)?;
        for i in 0..self.steps.len() {
            self.run_step(&mut state, i)?;
        }
        self.finish(state)
    }

    /// Checks and places the inputs (in [`Plan::inputs`] order) for a run.
    pub fn start(&self, inputs: &[Tensor]) -> Result<RunState, OnnxError> {
        if inputs.len() != self.inputs.len() {
            return Err(OnnxError::InputShape {
                input: self
                    .inputs
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: format!(
                    "the plan takes {} inputs, got {}",
                    self.inputs.len(),
                    inputs.len()
                ),
            });
        }
        let mut values = vec![None; self.slots];
        for (i, t) in inputs.iter().enumerate() {
            let port = &self.inputs[i];
            if t.dims() != port.shape.as_slice() || t.dtype() != port.dtype {
                return Err(OnnxError::InputShape {
                    input: port.name.clone(),
                    reason: format!(
                        "expected {:?} {:?}, got {:?} {:?}",
                        port.shape,
                        port.dtype,
                        t.dims(),
                        t.dtype()
                    ),
                });
            }
            let t = match self.input_cast[i] {
                Some(d) => t.to_dtype(d)?,
                None => t.clone(),
            };
            values[self.input_slots[i]] = Some(t);
        }
        Ok(RunState { values })
    }

    /// Runs step `i` (steps must run in order, each once).
    pub fn run_step(&self, state: &mut RunState, i: usize) -> Result<(), OnnxError> {
        let step = &self.steps[i];
        let fail = |reason: String| OnnxError::Node {
            node: step.info.name.clone(),
            op: step.info.op.clone(),
            reason,
        };
        let mut args = Vec::with_capacity(step.args.len());
        for &s in &step.args {
            args.push(state.values[s].as_ref().ok_or_else(|| {
                fail("an input was not computed (steps ran out of order)".into())
            })?);
        }
        let outs = (step.kernel)(&args).map_err(|e| fail(e.to_string()))?;
        drop(args);
        if outs.len() < step.outs.len() {
            return Err(fail(format!(
                "{} outputs, expected {}",
                outs.len(),
                step.outs.len()
            )));
        }
        for (k, (t, slot)) in outs.into_iter().zip(&step.outs).enumerate() {
            if let Some(s) = slot {
                if t.dims() != step.info.outputs[k].as_slice() {
                    return Err(fail(format!(
                        "output {k} has shape {:?}, shape inference said {:?}",
                        t.dims(),
                        step.info.outputs[k]
                    )));
                }
                state.values[*s] = Some(t);
            }
        }
        for &s in &step.free {
            state.values[s] = None;
        }
        Ok(())
    }

    /// The graph outputs of a finished run, in [`Plan::outputs`] order.
    pub fn finish(&self, state: RunState) -> Result<Vec<Tensor>, OnnxError> {
        self.output_src
            .iter()
            .zip(&self.outputs)
            .map(|(src, port)| {
                let t = match src {
                    Source::Slot(s) => state.values[*s].clone().ok_or_else(|| OnnxError::Node {
                        node: port.name.clone(),
                        op: "output".into(),
                        reason: "was not computed".into(),
                    })?,
                    Source::Const(t) => t.clone(),
                };
                Ok(if t.dtype() != port.dtype {
                    t.to_dtype(port.dtype)?
                } else {
                    t
                })
            })
            .collect()
    }

    /// How many slots hold a value right now (tests check that intermediates are freed).
    pub fn live_values(state: &RunState) -> usize {
        state.values.iter().filter(|v| v.is_some()).count()
    }
}
