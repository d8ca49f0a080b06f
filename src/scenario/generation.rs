//! What the generation scenarios (prefill, decode, generate: llama-bench's tests) share:
//! their tables' lists and prompt source, their measurement of a language model through its
//! own type (`model::llm::LlmLoaded`, reached through `Driven::model_mut`), their record
//! (`schema::LlmCaseInfo`) and their part of `check` (docs/llm.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{DriveError, Driven, Measured};
use crate::compare::{Better, Evidence, KindMetrics, MetricValue};
use crate::llm::bench::{self, LlmBench, LlmTest};
use crate::llm::prompt::read_prompt;
use crate::llm::tokens::random_tokens;
use crate::measure::{Observer, SamplerConfig, Workload};
use crate::model::llm::LlmLoaded;
use crate::schema::{
    CaseResult, KvCacheInfo, LlmCaseInfo, Settings, TokenEnergy, TokenLatency, TokenRate, LLM_TIMED,
};
use crate::spec::Checker;
use crate::stats;

/// How the next token is chosen, recorded with every case.
pub const SAMPLING: &str = "greedy (the largest logit), outside the timed region";

/// `quick = { prompt_tokens = [...], new_tokens = [...], depth = [...] }`: the lists `run
/// --quick` uses instead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickEntry {
    pub prompt_tokens: Option<Spanned<Vec<i64>>>,
    pub new_tokens: Option<Spanned<Vec<i64>>>,
    pub depth: Option<Spanned<Vec<i64>>>,
}

/// A generation table after validation: its lists (each sorted, without repeats; a list the
/// kind does not take is empty), where prompts come from, and the quick lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSpec {
    pub prompt_tokens: Vec<usize>,
    pub new_tokens: Vec<usize>,
    pub depth: Vec<usize>,
    /// A text whose first tokens (by the model's GGUF tokenizer) are the prompt; seeded
    /// random ids without it.
    pub prompt_file: Option<PathBuf>,
    /// The lists under `--quick` (each absent one: the list's smallest value).
    pub quick: QuickLists,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuickLists {
    pub prompt_tokens: Option<Vec<usize>>,
    pub new_tokens: Option<Vec<usize>>,
    pub depth: Option<Vec<usize>>,
}

impl GenerationSpec {
    /// The table as `--quick` runs it: the quick lists, or each list's smallest value.
    pub fn quick(&self) -> GenerationSpec {
        let pick = |quick: &Option<Vec<usize>>, full: &[usize]| match quick {
            Some(q) => q.clone(),
            None => full.iter().min().map(|&m| vec![m]).unwrap_or_default(),
        };
        GenerationSpec {
            prompt_tokens: pick(&self.quick.prompt_tokens, &self.prompt_tokens),
            new_tokens: pick(&self.quick.new_tokens, &self.new_tokens),
            depth: pick(&self.quick.depth, &self.depth),
            prompt_file: self.prompt_file.clone(),
            quick: self.quick.clone(),
        }
    }
}

/// One generation case: llama-bench's test and where its prompt comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationCase {
    pub test: LlmTest,
    pub prompt_file: Option<PathBuf>,
}

/// What the worker measured beyond the repetitions' primary figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRaw {
    /// Each repetition's TTFT (prefill, generate).
    pub ttft_ns: Vec<u64>,
    /// Every timed decode step, repetition after repetition.
    pub step_ns: Vec<u64>,
    pub generated: Vec<u32>,
    /// Where the prompt's ids came from, in words.
    pub prompt: String,
    /// KV cache bytes at the test's context, from the GGUF metadata.
    pub kv_cache_bytes: u64,
    /// Resident set size after the last repetition (its cache still held).
    pub rss_after_context_bytes: Option<u64>,
}

/// A list field: each value at least `min`, sorted, without repeats; `default` when absent.
pub fn list(
    checker: &mut Checker,
    field: &str,
    v: &Option<Spanned<Vec<i64>>>,
    min: i64,
    default: &[usize],
) -> Option<Vec<usize>> {
    let Some(v) = v else {
        return Some(default.to_vec());
    };
    let mut out = checker.counts(field, v, min, false)?;
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// The quick table's lists (`at` is the table's path): each list the kind takes (`mins`
/// holds its smallest value; `None` where the kind has no such list).
pub fn quick_lists(
    checker: &mut Checker,
    at: &str,
    quick: &Option<Spanned<QuickEntry>>,
    mins: [Option<i64>; 3],
) -> Option<QuickLists> {
    let Some(q) = quick else {
        return Some(QuickLists::default());
    };
    let q = q.get_ref();
    let mut ok = true;
    let mut one = |name: &str, v: &Option<Spanned<Vec<i64>>>, min: Option<i64>| match (v, min) {
        (None, _) => Some(None),
        (Some(_), Some(min)) => list(checker, &format!("{at}.quick.{name}"), v, min, &[]).map(Some),
        (Some(given), None) => {
            let kind = at.rsplit('.').next().unwrap_or(at);
            checker.problem(
                format!("{at}.quick.{name}"),
                given.span(),
                format!("`{name}` does not apply to {kind}"),
                Some("the quick table takes the lists of its scenario"),
            );
            ok = false;
            None
        }
    };
    let prompt_tokens = one("prompt_tokens", &q.prompt_tokens, mins[0]);
    let new_tokens = one("new_tokens", &q.new_tokens, mins[1]);
    let depth = one("depth", &q.depth, mins[2]);
    if !ok {
        return None;
    }
    Some(QuickLists {
        prompt_tokens: prompt_tokens?,
        new_tokens: new_tokens?,
        depth: depth?,
    })
}

/// `prompt_file`, relative to the suite file.
pub fn prompt_file(
    checker: &mut Checker,
    at: &str,
    v: &Option<Spanned<String>>,
) -> Option<Option<PathBuf>> {
    match v {
        None => Some(None),
        Some(v) => checker
            .file(&format!("{at}.prompt_file"), v, "prompt file")
            .map(Some),
    }
}

/// The prompt file and the most ids a case takes from it: the longest of `lengths` (prompts,
/// or decode depths) and one more (`LlmTest::prompt_ids`).
pub fn prompt_need(spec: &GenerationSpec, lengths: &[usize]) -> Option<(PathBuf, usize)> {
    let file = spec.prompt_file.clone()?;
    Some((file, lengths.iter().copied().max().unwrap_or(0) + 1))
}

/// The case id's part: llama-bench's test name and the batch, `pp512/b1`.
pub fn id_part(test: &LlmTest) -> String {
    format!("{}/b1", test.label())
}

fn fail(e: impl std::fmt::Display) -> DriveError {
    DriveError(e.to_string())
}

/// The prompt's ids and where they came from: seeded random ids, or a prompt file's first
/// ids (`llm::prompt`: a text by the model's GGUF tokenizer, or a token-id file).
fn prompt_ids(
    loaded: &LlmLoaded,
    case: &GenerationCase,
    seed: u64,
) -> Result<(Vec<u32>, String), DriveError> {
    let n = case.test.prompt_ids();
    let vocab = loaded.model.vocab_size();
    let Some(file) = &case.prompt_file else {
        let what = format!(
            "random ids, uniform over the vocabulary of {vocab}, seeded (seed {seed}), as llama-bench draws its prompts"
        );
        return Ok((random_tokens(vocab, n, seed), what));
    };
    let prompt = read_prompt(file, &loaded.path, vocab, n).map_err(fail)?;
    Ok(prompt.first(n))
}

/// A generation case measured: the harness's warm-up, then repetitions under its stopping
/// rule (`llm::bench::sample`), each from an empty KV cache; then the resident size with the
/// last repetition's cache held, and the test left for the worker's heap pass.
pub fn measure<W: Driven>(
    case: &GenerationCase,
    pipeline: &mut W,
    cfg: &SamplerConfig,
    observer: &mut dyn Observer,
) -> Result<Measured<GenerationRaw>, <W as Workload>::Error> {
    let loaded = pipeline
        .model_mut()
        .and_then(|m| m.downcast_mut::<LlmLoaded>())
        .ok_or_else(|| {
            fail(format!(
                "{} runs a language model (arch `llm`), and this model is not one",
                case.test.label()
            ))
        })?;
    let (ids, prompt) = prompt_ids(loaded, case, cfg.seed)?;
    let kv_cache_bytes = loaded.model.info().kv_cache_bytes(case.test.context());
    let sampled = {
        let mut bench = LlmBench::with_tokens(&mut loaded.model, case.test, &ids).map_err(fail)?;
        bench::sample(&mut bench, cfg, observer).map_err(fail)?
    };
    loaded.repeat = Some((case.test, ids));
    let rss_after_context_bytes = pipeline.rss_bytes();
    let mut common = sampled.sampled;
    // TTFT and the decode steps travel in the raw record, named; not as anonymous stages.
    common.stage_samples_ns.clear();
    Ok(Measured {
        sampled: common,
        raw: Some(GenerationRaw {
            ttft_ns: sampled.ttft_ns,
            step_ns: sampled.step_ns,
            generated: sampled.generated,
            prompt,
            kv_cache_bytes,
            rss_after_context_bytes,
        }),
    })
}

/// The record of a case before (or without) its figures.
pub fn record(case: &GenerationCase) -> LlmCaseInfo {
    let (prompt_tokens, new_tokens, depth) = match case.test {
        LlmTest::Prefill { prompt } => (prompt, 0, 0),
        LlmTest::Decode { depth, new_tokens } => (0, new_tokens, depth),
        LlmTest::Generate { prompt, new_tokens } => (prompt, new_tokens, 0),
    };
    LlmCaseInfo {
        test: case.test.label(),
        prompt_tokens,
        new_tokens,
        depth,
        prompt: match &case.prompt_file {
            Some(f) => format!("the first tokens of {}", f.display()),
            None => "seeded random ids".into(),
        },
        sampling: SAMPLING.into(),
        timed: LLM_TIMED.into(),
        fresh_cache: true,
        repetitions: 0,
        tokens_per_s: None,
        ttft_ms: None,
        itl_ms: None,
        tpot_ms: None,
        kv_cache: None,
        energy: None,
        generated: Vec::new(),
    }
}

fn to_ms(ns: &[u64]) -> Vec<f64> {
    ns.iter().map(|&v| v as f64 / 1e6).collect()
}
/// The [`ScenarioKind`](super::ScenarioKind) methods that prefill, decode and generate share,
/// written once: they differ only in the variant of their record (`$record`, e.g.
/// `ScenarioRecord::Decode`). Expanded inside each kind's `impl`, whose file imports the
/// types named here.
macro_rules! shared_methods {
    ($record:path) => {
        fn quick(&self, spec: &GenerationSpec) -> GenerationSpec {
            spec.quick()
        }

        /// The raw record (TTFT and inter-token latency samples) is not pooled across
        /// processes.
        fn single_process(&self) -> bool {
            true
        }

        fn measure<W: Driven>(
            &self,
            case: &GenerationCase,
            pipeline: &mut W,
            cfg: &SamplerConfig,
            observer: &mut dyn Observer,
        ) -> Result<Measured<GenerationRaw>, <W as Workload>::Error> {
            generation::measure(case, pipeline, cfg, observer)
        }

        fn record(&self, case: &GenerationCase) -> Option<ScenarioRecord> {
            Some($record(generation::record(case)))
        }

        fn assemble(
            &self,
            case: &GenerationCase,
            raw: &GenerationRaw,
            result: &mut CaseResult,
            settings: &Settings,
        ) {
            let info = generation::assemble(case, raw, result, settings);
            generation::apply(result, $record(info));
        }

        fn metrics<'a>(&self, case: &'a CaseResult) -> KindMetrics<'a> {
            generation::metrics(case)
        }
    };
}
pub(crate) use shared_methods;

/// A generation case's figures in `result`: its record, and no throughput in repetitions nor
/// traffic (tokens/s replaces the one; there is no roofline for a generation case).
pub fn apply(result: &mut CaseResult, record: crate::schema::ScenarioRecord) {
    result.record = Some(record);
    result.throughput_per_s = None;
    result.bytes_per_batch = None;
}

/// A latency distribution with the p90's CI; `None` without samples.
fn distribution(samples: Vec<f64>, s: &Settings) -> Option<TokenLatency> {
    let summary = stats::summarize(&samples, s.bootstrap_resamples, s.seed)?;
    let mut sorted = samples.clone();
    sorted.sort_unstable_by(f64::total_cmp);
    let p90_ci =
        stats::bootstrap_percentile_ci(&sorted, 0.90, s.bootstrap_resamples, s.seed ^ 0x90);
    Some(TokenLatency {
        samples,
        summary,
        p90_ci,
    })
}

/// The case's record with its figures, from the worker's raw record and the common figures
/// already in `result` (the primary latency, memory, energy). The case's throughput (in
/// repetitions) and traffic are cleared: tokens/s replaces them, and there is no roofline.
pub fn assemble(
    case: &GenerationCase,
    raw: &GenerationRaw,
    result: &CaseResult,
    s: &Settings,
) -> LlmCaseInfo {
    let test = case.test;
    let mut info = record(case);
    info.prompt = raw.prompt.clone();
    info.generated = raw.generated.clone();
    let primary_ms: &[f64] = result
        .latency_ms
        .as_ref()
        .map(|l| l.samples.as_slice())
        .unwrap_or_default();
    info.repetitions = primary_ms.len();
    let tokens = test.tokens() as f64;
    let per_repetition: Vec<f64> = primary_ms.iter().map(|ms| tokens / (ms / 1e3)).collect();
    if !per_repetition.is_empty() {
        info.tokens_per_s = Some(TokenRate {
            mean: stats::mean(&per_repetition),
            mean_ci: stats::mean_ci(&per_repetition, 0.95),
            stdev: stats::stdev(&per_repetition),
            per_repetition,
        });
    }
    info.ttft_ms = distribution(to_ms(&raw.ttft_ns), s);
    info.itl_ms = distribution(to_ms(&raw.step_ns), s);
    if let LlmTest::Generate { .. } = test {
        let steps = test.steps().max(1);
        let tpot: Vec<f64> = raw
            .step_ns
            .chunks(steps)
            .map(|c| c.iter().sum::<u64>() as f64 / c.len() as f64 / 1e6)
            .collect();
        info.tpot_ms = distribution(tpot, s);
    }
    let after_load = result.memory.as_ref().map(|m| m.rss_after_load_bytes);
    info.kv_cache = Some(KvCacheInfo {
        context_tokens: test.context(),
        computed_bytes: raw.kv_cache_bytes,
        rss_after_context_bytes: raw.rss_after_context_bytes,
        rss_growth_bytes: raw
            .rss_after_context_bytes
            .zip(after_load)
            .map(|(a, b)| a as i64 - b as i64),
    });
    info.energy = result.energy.as_ref().map(|e| {
        let counted = (e.inferences as usize * test.tokens()) as u64;
        TokenEnergy {
            method: e.method.as_str().into(),
            estimate: e.method.is_estimate(),
            tokens: counted,
            joules_per_token: e.joules / counted.max(1) as f64,
        }
    });
    info
}

/// A percentile of a token latency, compared on its samples.
fn percentile<'a>(
    name: &'static str,
    d: &'a TokenLatency,
    q: f64,
    threshold: fn(&crate::schema::CheckConfig) -> f64,
) -> MetricValue<'a> {
    let (value, ci) = if q == 0.5 {
        (d.summary.p50, d.summary.p50_ci)
    } else {
        (d.summary.p99, d.summary.p99_ci)
    };
    MetricValue {
        name,
        unit: "ms",
        better: Better::Lower,
        value,
        ci: Some(ci),
        evidence: Evidence::Percentile {
            samples: &d.samples,
            q,
        },
        threshold,
        tag: None,
    }
}

/// A generation case's part of the metric table: tokens/s, TTFT p50, ITL p99, and the
/// variant's perplexity and KL divergence (tagged with what was scored). The case's latency
/// (each repetition's primary figure) is compared too; its throughput in repetitions is not.
/// One worker process per case, so no per-process figures.
pub fn metrics(case: &CaseResult) -> KindMetrics<'_> {
    let mut own = Vec::new();
    if let (Some(info), Some(l)) = (case.llm(), &case.latency_ms) {
        if let Some(rate) = &info.tokens_per_s {
            own.push(MetricValue {
                name: "tokens_per_s",
                unit: "tokens/s",
                better: Better::Higher,
                value: rate.mean,
                ci: rate.mean_ci,
                evidence: Evidence::Rate {
                    latency_samples: &l.samples,
                },
                threshold: |t| t.tokens_per_s,
                tag: None,
            });
        }
        if let Some(d) = &info.ttft_ms {
            own.push(percentile("ttft_p50", d, 0.5, |t| t.ttft));
        }
        if let Some(d) = &info.itl_ms {
            own.push(percentile("itl_p99", d, 0.99, |t| t.itl_p99));
        }
    }
    if let Some(q) = &case.llm_quality {
        own.push(
            MetricValue::exact("perplexity", "", Better::Lower, q.perplexity, |t| {
                t.perplexity
            })
            .tagged(&q.dataset),
        );
        if let Some(k) = &q.kld {
            own.push(MetricValue {
                name: "kld",
                unit: "nats",
                better: Better::Lower,
                value: k.mean,
                ci: None,
                evidence: Evidence::Points,
                threshold: |t| t.kld,
                tag: Some(q.dataset.clone()),
            });
        }
    }
    KindMetrics {
        own,
        latency: true,
        throughput: false,
        per_process: false,
    }
}

#[cfg(test)]
mod tests;
