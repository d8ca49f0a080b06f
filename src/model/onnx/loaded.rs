//! An ONNX model on a device, as the worker drives it: one compiled plan per batch size the
//! case runs (made in `prepare`, over weights made once and shared), the graph's inputs
//! made beforehand, and the plan stepped through one step at a time for the profile.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use super::describe::options;
use super::inputs::{dtype_of, synthetic};
use super::Onnx;
use crate::onnx::{DeviceWeights, OnnxModel, Plan, RunState, StepInfo};
use crate::schema::{LayerKind, LayerSpec};

use crate::model::{CaseInputs, LoadedModel};

pub struct OnnxLoaded {
    spec: Onnx,
    /// The graph and its weights on the device, to compile plans for batch sizes not
    /// prepared (scoring); released once `prepare` has compiled the case's, so a case holds
    /// only its plans.
    source: Option<(OnnxModel, DeviceWeights)>,
    device: Device,
    plans: BTreeMap<usize, Plan>,
    /// Every graph input per batch size (the first is replaced by the forward pass's input).
    inputs: BTreeMap<usize, Vec<Tensor>>,
    /// Batch sizes in the order `prepare` was given them.
    order: Vec<usize>,
    seed: u64,
    /// Index of the model's output among the graph's.
    output: usize,
    /// `forward_step`'s run in progress: its batch size and values.
    stepping: Option<(usize, RunState)>,
    /// The batch size `forward_step` last ran: the plan the profile describes.
    stepped: Option<usize>,
    /// Bytes of one activation element (the plan's float type).
    float_bytes: usize,
}

fn err(e: crate::onnx::OnnxError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl OnnxLoaded {
    pub fn new(spec: &Onnx, model: OnnxModel, weights: DeviceWeights) -> Self {
        let output = model
            .outputs()
            .iter()
            .position(|o| o.name == spec.output)
            .unwrap_or(0);
        let float_bytes = weights.precision().dtype().size_in_bytes();
        OnnxLoaded {
            spec: spec.clone(),
            device: weights.device().clone(),
            source: Some((model, weights)),
            plans: BTreeMap::new(),
            inputs: BTreeMap::new(),
            order: Vec::new(),
            seed: 0,
            output,
            stepping: None,
            stepped: None,
            float_bytes,
        }
    }

    /// The plan for `batch`, compiled now if the graph is still held.
    fn compile(&mut self, batch: usize) -> candle_core::Result<()> {
        if self.plans.contains_key(&batch) {
            return Ok(());
        }
        let Some((model, weights)) = &self.source else {
            candle_core::bail!(
                "batch {batch} was not prepared (prepared: {:?})",
                self.order
            )
        };
        let plan = model
            .compile_with(&options(&self.spec.config, batch), weights)
            .map_err(err)?;
        self.plans.insert(batch, plan);
        Ok(())
    }

    /// Every graph input for `batch` (made once).
    fn ensure_inputs(&mut self, batch: usize) -> candle_core::Result<()> {
        if !self.inputs.contains_key(&batch) {
            let made = synthetic(&self.spec.inputs, batch, self.seed, &self.device)?;
            self.inputs.insert(batch, made);
        }
        Ok(())
    }

    fn run(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        let batch = x.dim(0)?;
        self.compile(batch)?;
        self.ensure_inputs(batch)?;
        let (Some(plan), Some(ins)) = (self.plans.get(&batch), self.inputs.get_mut(&batch)) else {
            candle_core::bail!("batch {batch} has no plan")
        };
        ins[0] = x.clone();
        let mut outs = plan.run(ins).map_err(err)?;
        Ok(outs.swap_remove(self.output))
    }

    /// The plan the profile describes: the one last stepped through, else the first
    /// prepared.
    fn profiled(&self) -> Option<&Plan> {
        let batch = self.stepped.or(self.order.first().copied())?;
        self.plans.get(&batch)
    }
}

/// The profile's kind of a step, from its op.
pub fn layer_kind(op: &str) -> LayerKind {
    match op {
        o if o.starts_with("Conv") => LayerKind::Conv,
        "Gemm" | "MatMul" => LayerKind::Dense,
        o if o.ends_with("Pool") => LayerKind::Pool,
        _ => LayerKind::Other,
    }
}

/// A step as the profile lists it: shapes of one sample, FLOPs of one sample.
fn layer_spec(s: &StepInfo, batch: usize) -> LayerSpec {
    let first = |v: &[Vec<usize>]| {
        v.first()
            .map(|shape| StepInfo::per_sample(shape, batch))
            .unwrap_or_default()
    };
    LayerSpec {
        name: s.name.clone(),
        kind: layer_kind(&s.op),
        op: Some(s.op.clone()),
        input: first(&s.inputs),
        output: first(&s.outputs),
        flops: s.flops / batch.max(1) as u64,
        params: s.params,
    }
}

impl LoadedModel for OnnxLoaded {
    fn params(&self) -> usize {
        self.plans.values().next().map(Plan::params).unwrap_or(0)
    }

    fn weight_bytes(&self) -> usize {
        self.plans.values().next().map(Plan::weight_bytes).unwrap_or(0)
    }

    fn input_dtype(&self) -> DType {
        self.spec
            .inputs
            .first()
            .map(|i| dtype_of(&i.dtype))
            .unwrap_or(DType::F32)
    }

    /// Compiles a plan per batch size and makes every graph input for it (seeded), then
    /// lets the graph go: the case keeps only its plans.
    fn prepare(
        &mut self,
        sizes: &[usize],
        inputs: &CaseInputs<'_>,
        _device: &Device,
    ) -> Result<Vec<Tensor>, String> {
        self.seed = inputs.seed;
        let mut out = Vec::with_capacity(sizes.len());
        for &b in sizes {
            self.compile(b).map_err(|e| e.to_string())?;
            self.ensure_inputs(b).map_err(|e| e.to_string())?;
            out.push(self.inputs[&b][0].clone());
        }
        self.order = sizes.to_vec();
        self.source = None;
        Ok(out)
    }

    fn preprocess(&mut self, batch: usize) -> candle_core::Result<Tensor> {
        let size = self.order.get(batch).copied().unwrap_or(0);
        match self.inputs.get(&size) {
            Some(ins) => Ok(ins[0].clone()),
            None => candle_core::bail!("no prepared input {batch}"),
        }
    }

    fn forward(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.spec.fixed_batch {
            // A graph whose batch is fixed takes a larger one (scoring) in slices.
            Some(fixed) if x.dim(0)? != fixed && x.dim(0)? % fixed == 0 => {
                let parts = (0..x.dim(0)? / fixed)
                    .map(|i| self.run(&x.narrow(0, i * fixed, fixed)?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&parts, 0)
            }
            _ => self.run(x),
        }
    }

    fn postprocess(&mut self, y: &Tensor) -> candle_core::Result<()> {
        std::hint::black_box(y.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        Ok(())
    }

    fn step_count(&self) -> usize {
        self.profiled().map(Plan::step_count).unwrap_or(0)
    }

    /// Step 0 starts a run on `x`; each later step runs the next step of it (its `x` is what
    /// the previous one returned); the last returns the model's output.
    fn forward_step(&mut self, step: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        if step == 0 {
            let batch = x.dim(0)?;
            self.compile(batch)?;
            self.ensure_inputs(batch)?;
            let (Some(plan), Some(ins)) = (self.plans.get(&batch), self.inputs.get_mut(&batch))
            else {
                candle_core::bail!("batch {batch} has no plan")
            };
            ins[0] = x.clone();
            self.stepping = Some((batch, plan.start(ins).map_err(err)?));
            self.stepped = Some(batch);
        }
        let Some((batch, state)) = self.stepping.as_mut() else {
            candle_core::bail!("step {step} before step 0")
        };
        let Some(plan) = self.plans.get(batch) else {
            candle_core::bail!("batch {batch} has no plan")
        };
        plan.run_step(state, step).map_err(err)?;
        if step + 1 < plan.step_count() {
            return Ok(x.clone());
        }
        let Some((_, state)) = self.stepping.take() else {
            candle_core::bail!("step {step} before step 0")
        };
        let mut outs = plan.finish(state).map_err(err)?;
        Ok(outs.swap_remove(self.output))
    }

    fn layers(&self) -> Vec<LayerSpec> {
        self.profiled()
            .map(|p| p.steps().map(|s| layer_spec(s, p.batch())).collect())
            .unwrap_or_default()
    }

    fn step_weight_bytes(&self) -> Vec<usize> {
        self.profiled()
            .map(|p| p.steps().map(|s| s.weight_bytes).collect())
            .unwrap_or_default()
    }

    fn step_traffic_bytes(&self, batch: usize) -> Vec<u64> {
        let Some(plan) = self.plans.get(&batch).or(self.profiled()) else {
            return Vec::new();
        };
        plan.steps().map(|s| s.traffic_bytes(self.float_bytes)).collect()
    }
}
