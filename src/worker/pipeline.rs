//! The workload the worker times: one inference of the loaded model as stages over prepared
//! inputs, and the forward pass one layer at a time for the profiler.

use std::time::Instant;

use crate::measure::{self, Workload};
use crate::model::bert::TextEncoder;
use crate::model::{error_text, synthetic_raw_input, Architecture, Network};
use crate::plan::Case;
use crate::schema::Stage;

/// A case's raw inputs: 8-bit values for the mlp and cnn, sentences for a bert (with the
/// tokenizer that turns them into token ids: its preprocess stage).
pub(super) enum RawInput {
    Values(candle_core::Tensor),
    Text {
        sentences: Vec<String>,
        encoder: std::rc::Rc<TextEncoder>,
    },
}

/// One inference as stages over prepared inputs; `stages` are the timed ones, in order.
pub(super) struct Pipeline<'a> {
    pub(super) net: &'a Network,
    pub(super) device: &'a candle_core::Device,
    pub(super) stages: Vec<Stage>,
    /// Raw inputs and model inputs, one per batch size the case runs (index = size - 1 for
    /// server cases; a single entry otherwise), all prepared before timing.
    pub(super) raw: Vec<RawInput>,
    pub(super) input: Vec<candle_core::Tensor>,
    /// Which entry of `raw` / `input` the next iteration uses.
    pub(super) current: usize,
    pub(super) logits: Option<candle_core::Tensor>,
    /// Test only (`run --inject-slowdown`): extra busy time per forward pass, as a fraction
    /// of the pass's own duration.
    pub(super) slowdown: Option<f64>,
}

/// Classes the postprocess stage ranks.
const TOP_K: usize = 5;

impl Workload for Pipeline<'_> {
    type Error = candle_core::Error;

    fn stages(&self) -> usize {
        self.stages.len()
    }

    fn run_stage(&mut self, stage: usize) -> candle_core::Result<()> {
        match self.stages[stage] {
            Stage::Preprocess => {
                self.input[self.current] = match &self.raw[self.current] {
                    RawInput::Values(raw) => self.net.preprocess(raw)?,
                    RawInput::Text { sentences, encoder } => {
                        encoder.encode_tensor(sentences, self.device)?
                    }
                }
            }
            // Without the test-only slowdown nothing but the forward pass runs here: no
            // extra clock read inside the timed region.
            Stage::Forward => match self.slowdown {
                None => self.logits = Some(self.net.forward(&self.input[self.current])?),
                Some(f) => {
                    let started = Instant::now();
                    self.logits = Some(self.net.forward(&self.input[self.current])?);
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
                match &self.raw[self.current] {
                    // A sentence encoder's answer is its embeddings, copied to the host.
                    RawInput::Text { .. } => {
                        std::hint::black_box(logits.to_vec2::<f32>()?);
                    }
                    RawInput::Values(_) => {
                        std::hint::black_box(self.net.postprocess(logits, TOP_K)?);
                    }
                }
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
    pub(super) net: &'a Network,
    pub(super) device: &'a candle_core::Device,
    pub(super) input: candle_core::Tensor,
    /// The previous step's output.
    pub(super) x: Option<candle_core::Tensor>,
}

impl Workload for LayerSteps<'_> {
    type Error = candle_core::Error;

    fn stages(&self) -> usize {
        self.net.step_count()
    }

    fn run_stage(&mut self, step: usize) -> candle_core::Result<()> {
        let y = match (step, &self.x) {
            (0, _) | (_, None) => self.net.forward_step(step, &self.input)?,
            (_, Some(x)) => self.net.forward_step(step, x)?,
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

/// What the scenario kinds drive: the two workloads above.
impl crate::scenario::Driven for Pipeline<'_> {}

/// Test only: keeps the core busy until `until` (a spin on the monotonic clock, no sleep), so
/// the injected slowdown costs CPU time the way slower code would, and scales with each pass.
fn injected_delay(until: Instant) {
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// The case's inputs, prepared before timing: raw inputs (8-bit values, or sentences with
/// their tokenizer) and the model input made from them once, one pair per batch size the
/// case runs.
pub(super) fn prepare_inputs(
    case: &Case,
    net: &Network,
    device: &candle_core::Device,
) -> Result<(Vec<RawInput>, Vec<candle_core::Tensor>), String> {
    // Inputs are prepared before timing: raw 8-bit inputs, and the model input made from
    // them once; the timed stages (forward by default) then run on them.
    let raw_shape = case
        .raw_input
        .clone()
        .unwrap_or_else(|| Network::default_raw_shape(&case.arch));
    // The scenario says which batch sizes it runs (a server: every size the dispatcher may
    // form; others the case's batch).
    let sizes = case.scenario.input_batches(case.batch_size);
    // A sentence encoder's tokenizer and sentences, loaded once for every batch size.
    let text = match (&case.text, &case.arch) {
        (Some(text), Architecture::Bert { seq_len, .. }) => {
            let encoder =
                TextEncoder::from_file(&text.tokenizer, *seq_len).map_err(|e| e.to_string())?;
            let all =
                crate::data::text::load_sentences(&text.sentences).map_err(|e| e.to_string())?;
            Some((std::rc::Rc::new(encoder), all))
        }
        (None, Architecture::Bert { .. }) => {
            return Err("a bert case needs its text inputs (tokenizer and sentences)".into())
        }
        _ => None,
    };
    let mut raw = Vec::with_capacity(sizes.len());
    let mut input = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let r = match &text {
            // The batch: the sentences in order, repeated when the batch is larger.
            Some((encoder, all)) => RawInput::Text {
                sentences: (0..size).map(|i| all[i % all.len()].clone()).collect(),
                encoder: encoder.clone(),
            },
            None => RawInput::Values(
                synthetic_raw_input(&raw_shape, size, case.settings.seed ^ 0x1a2b_3c4d, device)
                    .map_err(|e| format!("cannot build the input batch: {}", error_text(&e)))?,
            ),
        };
        input.push(
            match &r {
                RawInput::Values(raw) => net.preprocess(raw),
                RawInput::Text { sentences, encoder } => encoder.encode_tensor(sentences, device),
            }
            .map_err(|e| format!("cannot preprocess the input batch: {}", error_text(&e)))?,
        );
        raw.push(r);
    }
    Ok((raw, input))
}
