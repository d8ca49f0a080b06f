//! The timed parts of the LLM tests, with llama-bench's semantics:
//!
//! - prefill (`pp N`): a prompt of N tokens into an empty KV cache. TTFT is that forward
//!   pass; prompt tokens/s = N / TTFT.
//! - decode (`tg M@dD`): a context of D tokens prefilled untimed, then M single-token steps,
//!   each timed (the inter-token latencies); tokens/s = M / their sum.
//! - generate (`pp N+tg M`): a prefill of N (TTFT) then M - 1 steps, which with the prefill's
//!   token make M new tokens; end-to-end = TTFT + the steps, TPOT = (e2e - TTFT) / (M - 1),
//!   tokens/s = (N + M) / e2e as llama-bench counts `pg`.
//!
//! Prompts are seeded uniform random ids. Every repetition starts from an empty KV cache
//! (emptied before its clock starts). Sampling is greedy and sits outside the timed regions,
//! as does making each step's input: a timed region is one model call (and, off the CPU, a
//! device synchronisation), and its duration goes into a buffer reserved beforehand.
//! [`LlmBench`] is a [`Workload`] whose iteration is one repetition, so the harness's warm-up
//! applies; [`sample`] then repeats it under the harness's stopping rule, counted in
//! repetitions.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::decoder::Decoder;
use super::model::LlmModel;
use super::tokens::random_tokens;
use super::LlmError;
use crate::measure::{self, Observer, Phase, Progress, Sampled, SamplerConfig, Workload};
use crate::schema::StopReason;
use crate::stats;

/// Stopping-rule checks run at most this often (the harness's chunk target).
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// The stopping rule's bootstrap resamples (as in `measure`).
const STOP_RULE_RESAMPLES: usize = 1_000;

/// One LLM test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "test", rename_all = "snake_case")]
pub enum LlmTest {
    Prefill { prompt: usize },
    Decode { depth: usize, new_tokens: usize },
    Generate { prompt: usize, new_tokens: usize },
}

impl LlmTest {
    /// llama-bench's name: `pp512`, `tg128`, `tg128@d1024`, `pp512+tg128`.
    pub fn label(&self) -> String {
        match *self {
            LlmTest::Prefill { prompt } => format!("pp{prompt}"),
            LlmTest::Decode {
                depth: 0,
                new_tokens,
            } => format!("tg{new_tokens}"),
            LlmTest::Decode { depth, new_tokens } => format!("tg{new_tokens}@d{depth}"),
            LlmTest::Generate { prompt, new_tokens } => format!("pp{prompt}+tg{new_tokens}"),
        }
    }

    /// Positions the KV cache holds at the end of a repetition.
    pub fn context(&self) -> usize {
        match *self {
            LlmTest::Prefill { prompt } => prompt,
            LlmTest::Decode { depth, new_tokens } => depth + new_tokens,
            LlmTest::Generate { prompt, new_tokens } => prompt + new_tokens - 1,
        }
    }

    /// Timed decode steps per repetition.
    pub fn steps(&self) -> usize {
        match *self {
            LlmTest::Prefill { .. } => 0,
            LlmTest::Decode { new_tokens, .. } => new_tokens,
            LlmTest::Generate { new_tokens, .. } => new_tokens - 1,
        }
    }

    /// Tokens a repetition processes, as llama-bench counts them for t/s.
    pub fn tokens(&self) -> usize {
        match *self {
            LlmTest::Prefill { prompt } => prompt,
            LlmTest::Decode { new_tokens, .. } => new_tokens,
            LlmTest::Generate { prompt, new_tokens } => prompt + new_tokens,
        }
    }

    /// Ids a repetition's input takes: the prompt (or a decode's context of `depth`) and one
    /// more, the token a decode at depth 0 starts from.
    pub fn prompt_ids(&self) -> usize {
        match *self {
            LlmTest::Prefill { prompt } | LlmTest::Generate { prompt, .. } => prompt + 1,
            LlmTest::Decode { depth, .. } => depth + 1,
        }
    }

    fn check(&self) -> Result<(), LlmError> {
        let bad = match *self {
            LlmTest::Prefill { prompt } => prompt == 0,
            LlmTest::Decode { new_tokens, .. } => new_tokens == 0,
            LlmTest::Generate { prompt, new_tokens } => prompt == 0 || new_tokens < 2,
        };
        if bad {
            return Err(LlmError::Invalid(format!(
                "{}: a prompt needs at least 1 token, a decode at least 1 new token, a generate at least 2",
                self.label()
            )));
        }
        Ok(())
    }
}

/// One test over one model, ready to repeat. Holds the last repetition's timings.
///
/// Generic over the [`Decoder`] so that the harness's own cost per token can be measured on
/// this very loop with a model that does nothing ([`super::decoder::NullDecoder`]).
pub struct LlmBench<'m, M: Decoder + ?Sized = LlmModel> {
    model: &'m mut M,
    test: LlmTest,
    /// The prompt (prefill, generate) or the context (decode with a depth), `[1, n]`.
    prompt: Option<M::Input>,
    /// The first token a decode at depth 0 feeds.
    start_token: u32,
    ttft_ns: u64,
    step_ns: Vec<u64>,
    /// Greedy tokens of the last repetition (prefill's first, then each step's).
    generated: Vec<u32>,
}

impl<'m, M: Decoder + ?Sized> LlmBench<'m, M> {
    /// Checks the test against the model (context length) and draws its seeded prompt.
    pub fn new(model: &'m mut M, test: LlmTest, seed: u64) -> Result<Self, LlmError> {
        let ids = random_tokens(model.vocab_size(), test.prompt_ids(), seed);
        Self::with_tokens(model, test, &ids)
    }

    /// As [`LlmBench::new`], with the prompt's ids given (a prompt file's tokens): the first
    /// `test.prompt_ids() - 1` are the prompt (or a decode's context), the next the token a
    /// decode at depth 0 starts from; more are ignored.
    pub fn with_tokens(model: &'m mut M, test: LlmTest, ids: &[u32]) -> Result<Self, LlmError> {
        test.check()?;
        model.check_context(test.context())?;
        let n = test.prompt_ids() - 1;
        if ids.len() <= n {
            return Err(LlmError::Invalid(format!(
                "{} needs {} prompt tokens, only {} given",
                test.label(),
                n + 1,
                ids.len()
            )));
        }
        let prompt = if n > 0 {
            Some(model.input(&ids[..n])?)
        } else {
            None
        };
        Ok(LlmBench {
            model,
            test,
            prompt,
            start_token: ids[n],
            ttft_ns: 0,
            step_ns: Vec::with_capacity(test.steps()),
            generated: Vec::with_capacity(test.steps() + 1),
        })
    }

    pub fn test(&self) -> LlmTest {
        self.test
    }

    /// The last repetition's prefill time (0 for a decode).
    pub fn ttft_ns(&self) -> u64 {
        self.ttft_ns
    }

    /// The last repetition's decode steps.
    pub fn step_ns(&self) -> &[u64] {
        &self.step_ns
    }

    /// The last repetition's greedy tokens.
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// The figure the stopping rule watches: TTFT (prefill), the steps' sum (decode), or
    /// end-to-end (generate).
    pub fn primary_ns(&self) -> u64 {
        self.ttft_ns + self.step_ns.iter().sum::<u64>()
    }

    /// One repetition from an empty KV cache.
    pub fn run(&mut self) -> Result<(), LlmError> {
        self.model.reset();
        self.step_ns.clear();
        self.generated.clear();
        self.ttft_ns = 0;
        let mut next = self.start_token;
        if let Some(prompt) = &self.prompt {
            let timed = !matches!(self.test, LlmTest::Decode { .. });
            let t0 = Instant::now();
            let logits = self.model.extend(prompt)?;
            self.model.synchronize()?;
            if timed {
                self.ttft_ns = t0.elapsed().as_nanos() as u64;
            }
            next = self.model.greedy(&logits)?;
            if timed {
                self.generated.push(next);
            }
        }
        for _ in 0..self.test.steps() {
            let input = self.model.input(&[next])?;
            let t0 = Instant::now();
            let logits = self.model.decode_step(&input)?;
            self.model.synchronize()?;
            // Reserved for `steps()` values: never reallocates.
            self.step_ns.push(t0.elapsed().as_nanos() as u64);
            next = self.model.greedy(&logits)?;
            self.generated.push(next);
        }
        Ok(())
    }
}

impl<M: Decoder + ?Sized> Workload for LlmBench<'_, M> {
    type Error = LlmError;
    fn run_stage(&mut self, _stage: usize) -> Result<(), LlmError> {
        self.run()
    }
}

/// Repetitions of one test: the harness's `Sampled` (its samples are each repetition's
/// primary figure, see [`LlmBench::primary_ns`]; for generate its two stages are TTFT and the
/// decode steps' sum; its `measured_s` is the repetitions' wall time, the untimed sampling
/// between model calls included) with the per-step latencies beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSampled {
    pub test: LlmTest,
    pub sampled: Sampled,
    /// Each repetition's TTFT (prefill and generate; empty for decode).
    pub ttft_ns: Vec<u64>,
    /// Every decode step of every repetition, `test.steps()` per repetition, in order.
    pub step_ns: Vec<u64>,
    /// The greedy tokens of the last repetition.
    pub generated: Vec<u32>,
}

impl LlmSampled {
    /// Tokens per second of each repetition, as llama-bench counts them (prompt tokens over
    /// TTFT, new tokens over the steps' sum, prompt plus new tokens over end-to-end).
    pub fn tokens_per_second(&self) -> Vec<f64> {
        let tokens = self.test.tokens() as f64;
        self.sampled
            .samples_ns
            .iter()
            .map(|&ns| tokens / (ns as f64 * 1e-9))
            .collect()
    }

    /// Each repetition's mean time per output token after the first, ns (generate only).
    pub fn tpot_ns(&self) -> Vec<f64> {
        let steps = self.test.steps();
        match self.test {
            LlmTest::Generate { .. } => self
                .step_ns
                .chunks(steps)
                .map(|c| c.iter().sum::<u64>() as f64 / steps as f64)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Warm-up (the harness's, one iteration being one repetition), then repetitions until the
/// median primary figure is known within `max_noise` (after `min_time` and `min_iterations`),
/// or `max_time` or `max_samples` runs out: the harness's stopping rule, in repetitions.
/// `max_time` ends sampling only once `min_iterations` repetitions are in.
pub fn sample<M: Decoder + ?Sized>(
    bench: &mut LlmBench<'_, M>,
    cfg: &SamplerConfig,
    observer: &mut dyn Observer,
) -> Result<LlmSampled, LlmError> {
    let warm = measure::warm_up(bench, cfg, observer)?;
    let steps = bench.test.steps();
    let generate = matches!(bench.test, LlmTest::Generate { .. });
    let expected = (cfg.max_time.as_secs_f64() / warm.per_call_s.max(1e-9) * 2.0) as usize;
    let capacity = expected
        .max(cfg.min_iterations as usize)
        .clamp(2, cfg.max_samples.max(2));
    let mut primary: Vec<u64> = Vec::with_capacity(capacity);
    let mut ttft: Vec<u64> = Vec::with_capacity(if steps == 0 || generate { capacity } else { 0 });
    let mut step_ns: Vec<u64> = Vec::with_capacity(capacity * steps);
    let mut scratch: Vec<f64> = Vec::with_capacity(capacity);

    observer.window_started();
    let start = Instant::now();
    let mut measured = Duration::ZERO;
    let mut last_check = start;
    let mut noise = f64::INFINITY;
    let stop_reason = loop {
        let t = Instant::now();
        bench.run()?;
        measured += t.elapsed();
        primary.push(bench.primary_ns());
        if ttft.capacity() > 0 {
            ttft.push(bench.ttft_ns());
        }
        step_ns.extend_from_slice(bench.step_ns());

        let now = Instant::now();
        let elapsed = now - start;
        let full = primary.len() >= capacity;
        // Like llama-bench's `-r`, `min_iterations` repetitions run even past `max_time`
        // (one repetition has no interval)...
        let out_of_time = elapsed >= cfg.max_time && primary.len() as u64 >= cfg.min_iterations;
        // ...but not past the process's time budget (`--quick`), which the repetition in
        // flight may overrun: the case is then cut short.
        let over_budget = warm.deadline.is_some_and(|d| now >= d);
        if !(full || out_of_time || over_budget || now - last_check >= CHECK_EVERY) {
            continue;
        }
        last_check = now;
        let enough = elapsed >= cfg.min_time && primary.len() as u64 >= cfg.min_iterations;
        if enough || out_of_time || full || over_budget {
            noise = median_noise(&primary, &mut scratch, cfg.seed);
        }
        if enough && noise <= cfg.max_noise {
            break StopReason::Converged;
        }
        if over_budget && !enough {
            break StopReason::Budget;
        }
        if out_of_time || over_budget {
            break StopReason::MaxTime;
        }
        if full {
            break StopReason::MaxSamples;
        }
        observer.progress(&Progress {
            phase: Phase::Sampling,
            iterations: primary.len() as u64,
            elapsed_s: elapsed.as_secs_f64(),
            budget_s: cfg.max_time.as_secs_f64(),
            noise: noise.is_finite().then_some(noise),
        });
    };
    observer.window_ended(primary.len());
    let stage_samples_ns = if generate {
        let decode = primary
            .iter()
            .zip(&ttft)
            .map(|(&e2e, &t)| e2e - t)
            .collect();
        vec![ttft.clone(), decode]
    } else {
        Vec::new()
    };
    Ok(LlmSampled {
        test: bench.test,
        sampled: Sampled {
            samples_ns: primary,
            stage_samples_ns,
            first_iteration_ns: warm.first_iteration_ns,
            warmup_iterations: warm.warmup_iterations,
            warmup_s: warm.warmup_s,
            warmup_end: warm.warmup_end,
            warmup_trace_ms: warm.trace_ms,
            measured_s: measured.as_secs_f64(),
            stop_reason,
            noise,
        },
        ttft_ns: ttft,
        step_ns,
        generated: bench.generated.clone(),
    })
}

/// Relative half-width of the median's bootstrap CI (the harness's stopping statistic).
fn median_noise(samples: &[u64], scratch: &mut Vec<f64>, seed: u64) -> f64 {
    scratch.clear();
    scratch.extend(samples.iter().map(|&ns| ns as f64));
    scratch.sort_unstable_by(f64::total_cmp);
    let ci = stats::bootstrap_percentile_ci(scratch, 0.5, STOP_RULE_RESAMPLES, seed);
    stats::relative_half_width(ci, stats::percentile(scratch, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::model::argmax;
    use crate::llm::tiny::{write_temp, TinyLlama};
    use crate::schema::WarmupEnd;
    use candle_core::Device;

    fn tiny() -> (tempfile::TempDir, LlmModel) {
        let (d, p) = write_temp(&TinyLlama::default());
        let m = LlmModel::load(&p, &Device::Cpu).unwrap();
        (d, m)
    }

    fn cfg() -> SamplerConfig {
        SamplerConfig {
            warmup: Duration::from_millis(5),
            max_warmup: Duration::from_millis(100),
            warmup_tolerance: 0.5,
            min_time: Duration::from_millis(20),
            min_iterations: 5,
            // Generous: on a busy machine a tiny model's repetition can take 100 ms.
            max_time: Duration::from_secs(10),
            max_noise: 0.5,
            max_samples: 10_000,
            seed: 1,
            budget: None,
        }
    }

    #[test]
    fn tests_are_named_and_sized_as_llama_bench_counts_them() {
        let pp = LlmTest::Prefill { prompt: 512 };
        let tg = LlmTest::Decode {
            depth: 0,
            new_tokens: 128,
        };
        let tgd = LlmTest::Decode {
            depth: 1024,
            new_tokens: 128,
        };
        let pg = LlmTest::Generate {
            prompt: 512,
            new_tokens: 128,
        };
        let labels: Vec<String> = [pp, tg, tgd, pg].iter().map(LlmTest::label).collect();
        assert_eq!(labels, ["pp512", "tg128", "tg128@d1024", "pp512+tg128"]);
        assert_eq!(
            [pp, tg, tgd, pg].map(|t| t.context()),
            [512, 128, 1152, 639]
        );
        assert_eq!([pp, tg, tgd, pg].map(|t| t.steps()), [0, 128, 128, 127]);
        assert_eq!([pp, tg, tgd, pg].map(|t| t.tokens()), [512, 128, 128, 640]);
    }

    /// Each repetition times what its test says, from an empty cache, and generates the same
    /// greedy tokens as a hand-written greedy loop over the model.
    #[test]
    fn one_repetition_of_each_test() {
        let (_d, mut m) = tiny();
        let ids = random_tokens(m.vocab_size(), 13, 9);
        let mut want = vec![argmax(&m.prefill_tokens(&ids[..12]).unwrap())];
        for _ in 0..4 {
            want.push(argmax(&m.step_token(*want.last().unwrap()).unwrap()));
        }

        let mut b = LlmBench::new(
            &mut m,
            LlmTest::Generate {
                prompt: 12,
                new_tokens: 5,
            },
            9,
        )
        .unwrap();
        let steps_at = b.step_ns.as_ptr();
        for _ in 0..3 {
            b.run().unwrap();
            assert!(b.ttft_ns() > 0);
            assert_eq!(b.step_ns().len(), 4);
            assert_eq!(b.generated(), want);
            assert_eq!(
                b.primary_ns(),
                b.ttft_ns() + b.step_ns().iter().sum::<u64>()
            );
        }
        // The step buffer was reserved once: timed regions never grow it.
        assert_eq!(b.step_ns.as_ptr(), steps_at);

        let mut b = LlmBench::new(&mut m, LlmTest::Prefill { prompt: 12 }, 9).unwrap();
        b.run().unwrap();
        assert!(b.ttft_ns() > 0 && b.step_ns().is_empty());
        assert_eq!(b.generated(), &want[..1]);

        // A decode after 12 tokens of context: the context is not timed, the 4 steps are.
        let mut b = LlmBench::new(
            &mut m,
            LlmTest::Decode {
                depth: 12,
                new_tokens: 4,
            },
            9,
        )
        .unwrap();
        b.run().unwrap();
        assert_eq!(b.ttft_ns(), 0);
        assert_eq!(b.step_ns().len(), 4);
        assert_eq!(b.generated(), &want[1..]);
        assert_eq!(m.position(), 16);

        let mut b = LlmBench::new(
            &mut m,
            LlmTest::Decode {
                depth: 0,
                new_tokens: 3,
            },
            9,
        )
        .unwrap();
        b.run().unwrap();
        assert_eq!(b.step_ns().len(), 3);
    }

    #[test]
    fn tests_that_do_not_fit_the_model_are_refused() {
        let (_d, mut m) = tiny();
        let err = LlmBench::new(
            &mut m,
            LlmTest::Generate {
                prompt: 250,
                new_tokens: 8,
            },
            1,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("a context of 257 tokens"), "{err}");
        let err = LlmBench::new(
            &mut m,
            LlmTest::Generate {
                prompt: 4,
                new_tokens: 1,
            },
            1,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("pp4+tg1"), "{err}");
    }

    #[test]
    fn sampling_repeats_under_the_stopping_rule() {
        let (_d, mut m) = tiny();
        let test = LlmTest::Generate {
            prompt: 8,
            new_tokens: 4,
        };
        let mut b = LlmBench::new(&mut m, test, 3).unwrap();
        let s = sample(&mut b, &cfg(), &mut ()).unwrap();
        let n = s.sampled.samples_ns.len();
        // Converged (after the minimum of 5), or, on a busy machine, out of the samples its
        // warm-up estimate reserved room for (at least 5 too).
        assert!(n >= 5, "{n}");
        assert!(
            matches!(
                s.sampled.stop_reason,
                StopReason::Converged | StopReason::MaxSamples
            ),
            "{:?}",
            s.sampled.stop_reason
        );
        assert!(s.sampled.warmup_iterations >= 1);
        assert!(matches!(
            s.sampled.warmup_end,
            WarmupEnd::Stable | WarmupEnd::MaxTime
        ));
        assert_eq!(s.ttft_ns.len(), n);
        assert_eq!(s.step_ns.len(), 3 * n);
        assert_eq!(s.sampled.stage_samples_ns.len(), 2);
        for i in 0..n {
            let steps: u64 = s.step_ns[3 * i..3 * i + 3].iter().sum();
            assert_eq!(s.sampled.samples_ns[i], s.ttft_ns[i] + steps);
            assert_eq!(s.sampled.stage_samples_ns[1][i], steps);
            let tpot = s.tpot_ns()[i];
            assert!((tpot - steps as f64 / 3.0).abs() < 1e-6);
            let tps = s.tokens_per_second()[i];
            assert!((tps - 12.0 / (s.sampled.samples_ns[i] as f64 * 1e-9)).abs() < 1e-6 * tps);
        }
        assert_eq!(s.generated.len(), 4);

        let mut c = cfg();
        c.max_noise = 1e-12;
        c.max_samples = 7;
        let mut b = LlmBench::new(&mut m, LlmTest::Prefill { prompt: 4 }, 3).unwrap();
        let s = sample(&mut b, &c, &mut ()).unwrap();
        assert_eq!(s.sampled.stop_reason, StopReason::MaxSamples);
        assert_eq!(s.sampled.samples_ns, s.ttft_ns);
        assert!(s.step_ns.is_empty() && s.tpot_ns().is_empty());
    }
}
