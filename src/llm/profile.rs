//! The per-component profile of a generation test (`inferbench profile` on a prefill,
//! decode or generate case): the test's repetitions run under the case's stopping rule on a
//! second copy of the model loaded under a [`SpanTimer`], so each repetition's timed part
//! (a decode's context prefill is left out, as in the benchmark) is split into candle's
//! components: attention and MLP matmuls, RoPE, attention proper, norms, logits
//! ([`super::spans`]). Per component, one sample per repetition: the sum of its self time
//! over every layer and every forward pass of that repetition.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::bench::{self, LlmBench, LlmTest};
use super::decoder::Decoder;
use super::spans::{component, component_rank, SpanTimer};
use super::{LlmError, LlmModel};
use crate::measure::SamplerConfig;
use crate::schema::{LayerKind, LayerSpec, StopReason};

/// Each component's self time per profiled repetition, and the sampling's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentProfile {
    /// Components in report order, each with the candle spans it gathers.
    pub components: Vec<(String, Vec<String>)>,
    /// Per component, one duration per repetition, ms.
    pub samples_ms: Vec<Vec<f64>>,
    /// Each repetition's timed part as the benchmark times it, with the spans recorded, ms.
    pub repetition_ms: Vec<f64>,
    pub warmup_iterations: u64,
    pub stop_reason: StopReason,
    pub noise: f64,
}

impl ComponentProfile {
    /// The components as profile steps (no shapes, FLOPs or weights of their own: each
    /// gathers work from every layer).
    pub fn layer_specs(&self) -> Vec<LayerSpec> {
        self.components
            .iter()
            .map(|(name, spans)| LayerSpec {
                name: name.clone(),
                kind: LayerKind::Other,
                op: Some(format!("candle spans {}", spans.join(", "))),
                input: Vec::new(),
                output: Vec::new(),
                flops: 0,
                params: 0,
            })
            .collect()
    }
}

/// A model whose every repetition (its KV cache reset) starts an iteration of the timer.
struct Traced<'a> {
    model: &'a mut LlmModel,
    timer: &'a SpanTimer,
    /// Forward passes to leave out at the start of each repetition.
    skip: usize,
}

impl Decoder for Traced<'_> {
    type Input = Tensor;
    type Logits = Tensor;

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn check_context(&self, positions: usize) -> Result<(), LlmError> {
        Decoder::check_context(&*self.model, positions)
    }

    fn reset(&mut self) {
        self.model.reset();
        self.timer.begin_iteration(self.skip);
    }

    fn input(&self, tokens: &[u32]) -> Result<Tensor, LlmError> {
        self.model.input(tokens)
    }

    fn extend(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        self.model.extend(input)
    }

    fn decode_step(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        self.model.decode_step(input)
    }

    fn synchronize(&self) -> Result<(), LlmError> {
        Decoder::synchronize(&*self.model)
    }

    fn greedy(&self, logits: &Tensor) -> Result<u32, LlmError> {
        Decoder::greedy(&*self.model, logits)
    }
}

/// Profiles `test` on the model in `path` from `ids` (the case's prompt) under `cfg`.
pub fn profile_test(
    path: &Path,
    device: &Device,
    test: LlmTest,
    ids: &[u32],
    cfg: &SamplerConfig,
) -> Result<ComponentProfile, LlmError> {
    let timer = SpanTimer::default();
    let dispatch = timer.dispatch();
    let mut model = tracing::dispatcher::with_default(&dispatch, || LlmModel::load(path, device))?;
    let skip = match test {
        LlmTest::Decode { depth, .. } if depth > 0 => 1,
        _ => 0,
    };
    let mut traced = Traced {
        model: &mut model,
        timer: &timer,
        skip,
    };
    let sampled = {
        let mut bench = LlmBench::with_tokens(&mut traced, test, ids)?;
        bench::sample(&mut bench, cfg, &mut ())?
    };
    timer.disarm();
    let (keys, iterations) = timer.take();
    if keys.is_empty() {
        return Err(LlmError::Invalid(
            "candle's model opened no tracing spans: was `tracing` built without TRACE?".into(),
        ));
    }
    let timed = sampled.sampled.samples_ns.len();
    let profiled = &iterations[iterations.len().saturating_sub(timed)..];
    // Pairs gathered by component, in report order.
    let mut components: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, (parent, name)) in keys.iter().enumerate() {
        let label = component(parent, name);
        match components.iter_mut().find(|(l, _)| *l == label) {
            Some((_, pairs)) => pairs.push(i),
            None => components.push((label, vec![i])),
        }
    }
    components.sort_by_key(|(label, _)| component_rank(label));
    let samples_ms = components
        .iter()
        .map(|(_, pairs)| {
            profiled
                .iter()
                .map(|it| pairs.iter().map(|&p| it[p]).sum::<u64>() as f64 / 1e6)
                .collect()
        })
        .collect();
    let span_names = |pairs: &[usize]| {
        pairs
            .iter()
            .map(|&p| {
                let (parent, name) = keys[p];
                if parent.is_empty() {
                    format!("`{name}`")
                } else {
                    format!("`{parent}/{name}`")
                }
            })
            .collect()
    };
    Ok(ComponentProfile {
        components: components
            .iter()
            .map(|(label, pairs)| (label.clone(), span_names(pairs)))
            .collect(),
        samples_ms,
        repetition_ms: sampled
            .sampled
            .samples_ns
            .iter()
            .map(|&ns| ns as f64 / 1e6)
            .collect(),
        warmup_iterations: sampled.sampled.warmup_iterations,
        stop_reason: sampled.sampled.stop_reason,
        noise: sampled.sampled.noise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tiny::{write_temp, TinyLlama};
    use crate::llm::tokens::random_tokens;
    use std::time::Duration;

    fn cfg() -> SamplerConfig {
        SamplerConfig {
            warmup: Duration::from_millis(5),
            max_warmup: Duration::from_millis(50),
            min_time: Duration::from_millis(20),
            min_iterations: 4,
            max_time: Duration::from_millis(200),
            max_noise: 0.5,
            warmup_tolerance: 0.5,
            max_samples: 1000,
            seed: 1,
            budget: None,
        }
    }

    /// A decode at depth 8 on the tiny llama: every component candle traces is there, each
    /// repetition has a sample of each, and the components add up to the repetition's timed
    /// part (the rest: greedy sampling between steps and the spans' own cost).
    #[test]
    fn a_decode_splits_into_candles_components() {
        let (_d, path) = write_temp(&TinyLlama::default());
        let test = LlmTest::Decode {
            depth: 8,
            new_tokens: 4,
        };
        let ids = random_tokens(crate::llm::tiny::vocab_size(), 9, 5);
        let p = profile_test(&path, &Device::Cpu, test, &ids, &cfg()).unwrap();
        let names: Vec<&str> = p.components.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "matmuls: attention q, k, v, o",
                "RoPE",
                "attention: scores, softmax, values, KV cache",
                "matmuls: MLP gate, up, down",
                "MLP: activation, residual add",
                "RMS norms",
                "logits: output matmul",
                "logits: rest",
                "embedding lookup, residual adds, other",
            ]
        );
        let reps = p.repetition_ms.len();
        assert!(reps >= 4, "{reps}");
        assert!(p.samples_ms.iter().all(|s| s.len() == reps));
        for r in 0..reps {
            let sum: f64 = p.samples_ms.iter().map(|s| s[r]).sum();
            assert!(
                sum > 0.0 && sum <= p.repetition_ms[r],
                "{sum} vs {}",
                p.repetition_ms[r]
            );
        }
        let specs = p.layer_specs();
        assert_eq!(specs.len(), names.len());
        assert!(specs[0].op.as_deref().unwrap().contains("`attn/qmatmul`"));
    }
}
