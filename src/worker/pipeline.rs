//! The workload the worker times: one inference of the loaded model (whatever its kind) as
//! stages over prepared inputs, and the forward pass one layer at a time for the profiler.

use std::time::Instant;

use crate::measure::{self, Workload};
use crate::model::{CaseInputs, LoadedModel};
use crate::plan::Case;
use crate::schema::Stage;

/// One inference as stages over prepared inputs; `stages` are the timed ones, in order.
pub(super) struct Pipeline<'a> {
    /// The loaded model; it keeps the raw inputs its `prepare` made.
    pub(super) model: &'a mut dyn LoadedModel,
    pub(super) device: &'a candle_core::Device,
    pub(super) stages: Vec<Stage>,
    /// Model inputs, one per batch size the case runs (index = size - 1 for server cases; a
    /// single entry otherwise), all prepared before timing.
    pub(super) input: Vec<candle_core::Tensor>,
    /// Which entry of `input` (and of the model's raw inputs) the next iteration uses.
    pub(super) current: usize,
    pub(super) logits: Option<candle_core::Tensor>,
    /// Test only (`run --inject-slowdown`): extra busy time per forward pass, as a fraction
    /// of the pass's own duration.
    pub(super) slowdown: Option<f64>,
}

impl Workload for Pipeline<'_> {
    type Error = candle_core::Error;

    fn stages(&self) -> usize {
        self.stages.len()
    }

    fn run_stage(&mut self, stage: usize) -> candle_core::Result<()> {
        match self.stages[stage] {
            Stage::Preprocess => self.input[self.current] = self.model.preprocess(self.current)?,
            // Without the test-only slowdown nothing but the forward pass runs here: no
            // extra clock read inside the timed region.
            Stage::Forward => match self.slowdown {
                None => self.logits = Some(self.model.forward(&self.input[self.current])?),
                Some(f) => {
                    let started = Instant::now();
                    self.logits = Some(self.model.forward(&self.input[self.current])?);
                    self.device.synchronize()?;
                    let done = Instant::now();
                    injected_delay(done + (done - started).mul_f64(f));
                }
            },
            Stage::Postprocess => {
                let logits = match &self.logits {
                    Some(l) => l,
                    None => {
                        return Err(candle_core::Error::Msg("postprocess before forward".into()))
                    }
                };
                self.model.postprocess(logits)?;
            }
        }
        // Stage boundaries are only meaningful once the device has finished the work.
        self.device.synchronize()
    }
}

/// The forward pass one step (layer) at a time, for the profiler: each step is a timed stage
/// that ends with a device synchronisation, so its clock read is right on a GPU too (on the
/// CPU candle runs eagerly and `synchronize` is a no-op).
pub(super) struct LayerSteps<'a> {
    pub(super) model: &'a mut dyn LoadedModel,
    pub(super) device: &'a candle_core::Device,
    pub(super) input: candle_core::Tensor,
    /// The previous step's output.
    pub(super) x: Option<candle_core::Tensor>,
}

impl Workload for LayerSteps<'_> {
    type Error = candle_core::Error;

    fn stages(&self) -> usize {
        self.model.step_count()
    }

    fn run_stage(&mut self, step: usize) -> candle_core::Result<()> {
        let y = match (step, &self.x) {
            (0, _) | (_, None) => self.model.forward_step(step, &self.input)?,
            (_, Some(x)) => self.model.forward_step(step, x)?,
        };
        self.x = Some(y);
        self.device.synchronize()
    }
}

/// A server batch of `k` queries: every timed stage on the prepared batch of size `k`.
impl measure::server::BatchWorkload for Pipeline<'_> {
    type Error = candle_core::Error;

    fn run_batch(&mut self, k: usize) -> candle_core::Result<()> {
        self.current = k.clamp(1, self.input.len()) - 1;
        (0..self.stages.len()).try_for_each(|s| self.run_stage(s))
    }
}

/// What the scenario kinds drive: the two workloads above, the model as its own type (for
/// the generation scenarios), and this process's resident size.
impl crate::scenario::Driven for Pipeline<'_> {
    fn model_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        self.model.as_any_mut()
    }

    fn rss_bytes(&self) -> Option<u64> {
        crate::probe::memory::rss_bytes("self")
    }
}

/// A scenario kind's own failure, as the pipeline's error.
impl From<crate::scenario::DriveError> for candle_core::Error {
    fn from(e: crate::scenario::DriveError) -> Self {
        candle_core::Error::Msg(e.0)
    }
}

/// Test only: keeps the core busy until `until` (a spin on the monotonic clock, no sleep), so
/// the injected slowdown costs CPU time the way slower code would, and scales with each pass.
fn injected_delay(until: Instant) {
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// The case's model inputs, prepared before timing by the model (which keeps the raw inputs
/// its preprocess stage starts from), one per batch size the case runs.
pub(super) fn prepare_inputs(
    case: &Case,
    model: &mut dyn LoadedModel,
    device: &candle_core::Device,
) -> Result<Vec<candle_core::Tensor>, String> {
    // The scenario says which batch sizes it runs (a server: every size the dispatcher may
    // form; others the case's batch).
    let sizes = case.scenario.input_batches(case.batch_size);
    let inputs = CaseInputs {
        raw_shape: case.raw_input.as_deref(),
        text: case.text.as_ref(),
        seed: case.settings.seed,
    };
    model.prepare(&sizes, &inputs, device)
}
