//! The measurement settings every case ran with and the regression check's thresholds: both
//! are written into every run.

use serde::{Deserialize, Serialize};

/// Number of bootstrap resamples used for the reported confidence intervals.
pub const DEFAULT_RESAMPLES: usize = 10_000;

/// Measurement settings after defaults are applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Minimum warm-up before sampling.
    pub warmup_s: f64,
    /// Warm-up ends once the running median is stable (see `warmup_tolerance`), or here.
    #[serde(default = "default_max_warmup_s")]
    pub max_warmup_s: f64,
    /// Warm-up is stable when the last three ~50 ms block medians spread less than this.
    #[serde(default = "default_warmup_tolerance")]
    pub warmup_tolerance: f64,
    /// Stages inside the timed region, in pipeline order; `forward` always among them.
    #[serde(default = "default_timed")]
    pub timed: Vec<Stage>,
    /// Sampling runs at least this long...
    pub min_time_s: f64,
    /// ...and at least this many iterations...
    pub min_iterations: u64,
    /// ...until the median's 95% CI half-width is within `max_noise` of the median...
    pub max_noise: f64,
    /// ...or this much time has passed (the case is then marked `noisy`).
    pub max_time_s: f64,
    /// Hard cap on kept samples per case (memory and run-file size).
    pub max_samples: usize,
    /// A worker running longer than this is killed and its case marked `failed`.
    pub case_timeout_s: f64,
    /// Resamples for the reported bootstrap confidence intervals.
    pub bootstrap_resamples: usize,
    /// Seeds weights, inputs and the bootstrap.
    pub seed: u64,
    /// A worker whose resident memory exceeds this is stopped and its case marked `failed`.
    #[serde(default)]
    pub max_rss_mb: Option<u64>,
    /// Package TDP for the `estimate-tdp` energy method (else a table by CPU model, else a default).
    #[serde(default)]
    pub tdp_watts: Option<f64>,
    /// Hardware threads sharing `tdp_watts` (default: the logical CPUs visible).
    #[serde(default)]
    pub tdp_threads: Option<f64>,
    /// Seconds of idle power sampled before the run where an energy counter exists.
    #[serde(default = "default_idle_power_s")]
    pub idle_power_s: f64,
    /// Worker processes per case, run back to back; their samples are pooled, and `check`
    /// treats the process (not the sample) as the unit of its test when both runs have two
    /// or more (docs/check.md, "Processes: the unit of the test").
    #[serde(default = "default_processes")]
    pub processes: usize,
    /// With several processes: a case whose processes found the machine disturbed (its
    /// reference kernel off its fastest) gets more, up to this many in all, until it has
    /// `UNDISTURBED_WANTED` undisturbed ones (docs/check.md, "Undisturbed processes: a
    /// reference kernel beside the model"). Default: `processes` (none extra).
    #[serde(default)]
    pub max_processes: Option<usize>,
    /// A worker process's time budget, s, for cold start, warm-up and sampling together
    /// (`--quick` sets `QUICK_BUDGET_S`): once spent, warm-up ends and sampling stops after
    /// the chunk in flight, and a case cut short before its minimum time and count is
    /// `partial` (stop reason `budget`). Unset: no budget. Written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_s: Option<f64>,
}

/// `--quick`'s time budget per worker process, s (docs/scenarios.md, "Quick runs: a time
/// budget per case").
pub const QUICK_BUDGET_S: f64 = 2.0;

impl Settings {
    /// Most processes a case may get: `max_processes`, never fewer than `processes`.
    pub fn max_processes(&self) -> usize {
        self.max_processes
            .unwrap_or(self.processes)
            .max(self.processes)
            .max(1)
    }
}

fn default_processes() -> usize {
    1
}

fn default_idle_power_s() -> f64 {
    1.0
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            warmup_s: 0.5,
            max_warmup_s: default_max_warmup_s(),
            warmup_tolerance: default_warmup_tolerance(),
            timed: default_timed(),
            min_time_s: 1.0,
            min_iterations: 10,
            max_noise: 0.02,
            max_time_s: 3.0,
            max_samples: 100_000,
            case_timeout_s: 120.0,
            bootstrap_resamples: DEFAULT_RESAMPLES,
            seed: 42,
            max_rss_mb: None,
            tdp_watts: None,
            tdp_threads: None,
            idle_power_s: default_idle_power_s(),
            processes: default_processes(),
            max_processes: None,
            budget_s: None,
        }
    }
}

impl Settings {
    /// `--quick`: short warm-up and sampling for smoke runs; the noise bound is kept, so a
    /// quick case that did not settle is reported `noisy` rather than passed off as clean,
    /// and every process has `QUICK_BUDGET_S`, so a model of seconds per iteration is cut
    /// short (`partial`) instead of running its minimum count.
    pub fn quick(&self) -> Settings {
        Settings {
            budget_s: Some(self.budget_s.unwrap_or(QUICK_BUDGET_S).min(QUICK_BUDGET_S)),
            warmup_s: self.warmup_s.min(0.05),
            max_warmup_s: self.max_warmup_s.min(0.3),
            min_time_s: self.min_time_s.min(0.1),
            min_iterations: self.min_iterations.min(5),
            max_time_s: self.max_time_s.min(0.3),
            ..self.clone()
        }
    }
}

/// Stages of one inference; `settings.timed` says which are inside the timed region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Raw input (8-bit values) to model input: scale, normalise, resize, lay out as NCHW.
    Preprocess,
    Forward,
    /// Logits to answers: softmax, top-k, copied to the host.
    Postprocess,
}

impl Stage {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Preprocess => "preprocess",
            Stage::Forward => "forward",
            Stage::Postprocess => "postprocess",
        }
    }
}

fn default_timed() -> Vec<Stage> {
    vec![Stage::Forward]
}

fn default_max_warmup_s() -> f64 {
    3.0
}

fn default_warmup_tolerance() -> f64 {
    0.05
}

/// Thresholds of the regression check, after defaults. Relative thresholds are fractions of
/// the baseline value (0.05 = 5%); `*_points` are absolute percentage points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckConfig {
    /// Median latency: relative change that counts (default 0.04; BENCHMARKS.md, issue #6).
    pub latency_p50: f64,
    /// 99th-percentile latency: relative change that counts (default 0.10).
    pub latency_p99: f64,
    /// Throughput (samples/s): relative drop that counts (default 0.04).
    pub throughput: f64,
    /// Weight bytes: relative growth that counts (default 0: any growth).
    pub weight_bytes: f64,
    /// Peak resident memory of the worker, when runs record it (default 0.10).
    pub peak_rss: f64,
    /// Energy per inference, when runs record it with the same method (default 0.10).
    pub energy: f64,
    /// Accuracy: absolute drop in percentage points that counts (default 1.0).
    pub accuracy_points: f64,
    /// Macro F1: absolute drop in percentage points that counts (default 1.0).
    pub f1_points: f64,
    /// Significance level of the tests; intervals are at confidence `1 - significance`
    /// (default 0.01).
    pub significance: f64,
    /// Fewer latency samples than this on either side make a latency verdict `inconclusive`
    /// (default 10).
    pub min_samples: usize,
    /// With several processes per case, only processes whose reference-kernel time was
    /// within this fraction of the fastest are compared (default 0.03; docs/check.md,
    /// "Undisturbed processes: a reference kernel beside the model").
    pub reference_band: f64,
    /// ... and only those that other work kept off their CPU for at most this share of
    /// their window (`processes.run_queue_share`; default 0.02; docs/check.md). Written only
    /// when it is not the default, so run files from before the key existed read and write
    /// back byte for byte.
    #[serde(skip_serializing_if = "is_default_run_queue_share")]
    pub max_run_queue_share: f64,
    /// Language models: tokens per second, relative drop that counts (default 0.04).
    #[serde(skip_serializing_if = "CheckConfig::is_default_tokens_per_s")]
    pub tokens_per_s: f64,
    /// Language models: median time to first token, relative growth that counts (default
    /// 0.04).
    #[serde(skip_serializing_if = "CheckConfig::is_default_ttft")]
    pub ttft: f64,
    /// Language models: 99th-percentile inter-token latency, relative growth that counts
    /// (default 0.10).
    #[serde(skip_serializing_if = "CheckConfig::is_default_itl_p99")]
    pub itl_p99: f64,
    /// Language models: perplexity on the variant's token ids, relative growth that counts
    /// (default 0.01).
    #[serde(skip_serializing_if = "CheckConfig::is_default_perplexity")]
    pub perplexity: f64,
    /// Language models: mean KL divergence from the baseline variant, absolute growth in nats
    /// that counts (default 0.01).
    #[serde(skip_serializing_if = "CheckConfig::is_default_kld")]
    pub kld: f64,
}

/// The default of `CheckConfig::max_run_queue_share`: on the project's 2-vCPU VM, processes
/// of `suites/ci.toml` with the machine otherwise quiet lost a median 0.2-0.5% of their
/// window to other work (93% under 2%); beside two busy loops, 74% lost more than 2%, and
/// those that lost less measured the quiet run's figures (BENCHMARKS.md, "Beside a
/// busy neighbour: the scheduler's account and measure again (issue #19, 2026-12-01)").
pub const DEFAULT_MAX_RUN_QUEUE_SHARE: f64 = 0.02;

fn is_default_run_queue_share(x: &f64) -> bool {
    *x == DEFAULT_MAX_RUN_QUEUE_SHARE
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            latency_p50: 0.04,
            latency_p99: 0.10,
            throughput: 0.04,
            weight_bytes: 0.0,
            peak_rss: 0.10,
            energy: 0.10,
            accuracy_points: 1.0,
            f1_points: 1.0,
            significance: 0.01,
            min_samples: 10,
            reference_band: 0.03,
            max_run_queue_share: DEFAULT_MAX_RUN_QUEUE_SHARE,
            tokens_per_s: 0.04,
            ttft: 0.04,
            itl_p99: 0.10,
            perplexity: 0.01,
            kld: 0.01,
        }
    }
}

// The language-model thresholds are left out of run files and `check`'s JSON at their
// defaults, so files of other kinds keep the shape they had before them.
impl CheckConfig {
    fn is_default_tokens_per_s(v: &f64) -> bool {
        *v == CheckConfig::default().tokens_per_s
    }
    fn is_default_ttft(v: &f64) -> bool {
        *v == CheckConfig::default().ttft
    }
    fn is_default_itl_p99(v: &f64) -> bool {
        *v == CheckConfig::default().itl_p99
    }
    fn is_default_perplexity(v: &f64) -> bool {
        *v == CheckConfig::default().perplexity
    }
    fn is_default_kld(v: &f64) -> bool {
        *v == CheckConfig::default().kld
    }
}

/// How a `[check]` key's value is bounded.
#[derive(Clone, Copy)]
enum CheckKind {
    Relative,
    Points,
    Significance,
    Count,
    Share,
    Nats,
}

const CHECK_KEYS: &[(&str, CheckKind)] = &[
    ("latency_p50", CheckKind::Relative),
    ("latency_p99", CheckKind::Relative),
    ("throughput", CheckKind::Relative),
    ("weight_bytes", CheckKind::Relative),
    ("peak_rss", CheckKind::Relative),
    ("energy", CheckKind::Relative),
    ("accuracy_points", CheckKind::Points),
    ("f1_points", CheckKind::Points),
    ("significance", CheckKind::Significance),
    ("min_samples", CheckKind::Count),
    ("reference_band", CheckKind::Relative),
    ("max_run_queue_share", CheckKind::Share),
    ("tokens_per_s", CheckKind::Relative),
    ("ttft", CheckKind::Relative),
    ("itl_p99", CheckKind::Relative),
    ("perplexity", CheckKind::Relative),
    ("kld", CheckKind::Nats),
];

/// The range a check key's value must lie in, and how to read the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRange {
    pub bound: &'static str,
    pub hint: &'static str,
}

impl CheckConfig {
    /// Every key of the `[check]` table, as written in the suite and after `--threshold`.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        CHECK_KEYS.iter().map(|(k, _)| *k)
    }

    pub fn is_key(key: &str) -> bool {
        CHECK_KEYS.iter().any(|(k, _)| *k == key)
    }

    /// The value of `key` (as a number), if `key` exists.
    pub fn get(&self, key: &str) -> Option<f64> {
        Some(match key {
            "latency_p50" => self.latency_p50,
            "latency_p99" => self.latency_p99,
            "throughput" => self.throughput,
            "weight_bytes" => self.weight_bytes,
            "peak_rss" => self.peak_rss,
            "energy" => self.energy,
            "accuracy_points" => self.accuracy_points,
            "f1_points" => self.f1_points,
            "significance" => self.significance,
            "min_samples" => self.min_samples as f64,
            "reference_band" => self.reference_band,
            "max_run_queue_share" => self.max_run_queue_share,
            "tokens_per_s" => self.tokens_per_s,
            "ttft" => self.ttft,
            "itl_p99" => self.itl_p99,
            "perplexity" => self.perplexity,
            "kld" => self.kld,
            _ => return None,
        })
    }

    /// The range `value` misses for `key`, or `None` when it is acceptable (or `key` is
    /// unknown). The same rules hold for the suite's `[check]` table, `check --threshold`
    /// and the table a run file carries.
    pub fn out_of_range(key: &str, value: f64) -> Option<CheckRange> {
        let &(_, kind) = CHECK_KEYS.iter().find(|(k, _)| *k == key)?;
        let ok = value.is_finite()
            && match kind {
                CheckKind::Relative => (0.0..=10.0).contains(&value),
                CheckKind::Points => (0.0..=100.0).contains(&value),
                CheckKind::Significance => value > 0.0 && value < 0.5,
                CheckKind::Count => value >= 2.0 && value.fract() == 0.0,
                CheckKind::Share => (0.0..=1.0).contains(&value),
                CheckKind::Nats => (0.0..=10.0).contains(&value),
            };
        if ok {
            return None;
        }
        Some(match kind {
            CheckKind::Relative => CheckRange {
                bound: "a fraction between 0 and 10",
                hint: "relative thresholds are fractions of the baseline: 0.05 means 5%",
            },
            CheckKind::Points => CheckRange {
                bound: "between 0 and 100 percentage points",
                hint: "quality thresholds are absolute drops in points: 1.0 means 1 point",
            },
            CheckKind::Significance => CheckRange {
                bound: "between 0 and 0.5 (exclusive)",
                hint: "it is the tests' significance level: 0.01 means 1%",
            },
            CheckKind::Count => CheckRange {
                bound: "a whole number of at least 2",
                hint: "it is the fewest latency samples per case a verdict needs, as in 10",
            },
            CheckKind::Share => CheckRange {
                bound: "a share between 0 and 1",
                hint: "it is the most of its window a process may lose to other work and still count as undisturbed: 0.02 means 2%, 1 turns the test off",
            },
            CheckKind::Nats => CheckRange {
                bound: "between 0 and 10 nats",
                hint: "it is an absolute growth of the mean KL divergence: 0.01 means 0.01 nats",
            },
        })
    }
}
