//! The rules every record of a run file keeps, checked after parsing (`validate.rs` holds the
//! checker and the scan of every number): thresholds in their ranges, settings a run could
//! have used, measured figures that are not negative, sample lists that are not empty, case
//! ids that are unique, per-process lists of one length, shards that exist.

use std::collections::HashMap;

use super::validate::{
    scan, Checker, Problem, MAX_CASES, MAX_ITEMS, MAX_PROCESSES, MAX_RESAMPLES, MAX_SECONDS,
};
use super::*;

impl RunResult {
    /// Every problem of the run's values, each named by its JSON path.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut c = Checker::new();
        scan(self, &mut c);
        c.at("settings", |c| self.settings.check_values(c));
        c.at("check", |c| self.check.check_values(c));
        c.count("cases", self.cases.len(), 0, MAX_CASES);
        c.at("cases", |c| {
            let mut first: HashMap<&str, usize> = HashMap::new();
            for (i, case) in self.cases.iter().enumerate() {
                c.item(i, |c| {
                    case.check_values(c);
                    if let Some(j) = first.insert(&case.id, i) {
                        c.problem_at("id", format!("`{}` is also the id of cases[{j}]", case.id));
                    }
                });
            }
        });
        if let Some(shard) = &self.shard {
            c.at("shard", |c| shard.check_values(c));
        }
        c.at("merged_from", |c| {
            for (i, part) in self.merged_from.iter().enumerate() {
                if let Some(shard) = &part.shard {
                    c.item(i, |c| c.at("shard", |c| shard.check_values(c)));
                }
            }
        });
        c.opt_non_negative("injected_slowdown", self.injected_slowdown);
        if let Some(peaks) = &self.peaks {
            c.at("peaks", |c| peaks.check_values(c));
        }
        c.finish()
    }
}

impl Settings {
    /// The settings a suite could have given (the suite's own rules, from a file).
    pub fn check_values(&self, c: &mut Checker) {
        for (name, x) in [
            ("warmup_s", self.warmup_s),
            ("max_warmup_s", self.max_warmup_s),
            ("warmup_tolerance", self.warmup_tolerance),
            ("min_time_s", self.min_time_s),
            ("max_time_s", self.max_time_s),
            ("idle_power_s", self.idle_power_s),
        ] {
            c.between(name, x, 0.0, MAX_SECONDS);
        }
        c.positive("case_timeout_s", self.case_timeout_s);
        c.between("case_timeout_s", self.case_timeout_s, 0.0, MAX_SECONDS);
        c.at("max_noise", |c| {
            if !(self.max_noise > 0.0 && self.max_noise < 1.0) {
                c.problem(format!(
                    "must be between 0 and 1 (exclusive), got {}",
                    self.max_noise
                ));
            }
        });
        if self.min_iterations == 0 {
            c.problem_at("min_iterations", "must be at least 1");
        }
        c.count("max_samples", self.max_samples, 2, MAX_ITEMS);
        c.count(
            "bootstrap_resamples",
            self.bootstrap_resamples,
            100,
            MAX_RESAMPLES,
        );
        c.count("processes", self.processes, 1, MAX_PROCESSES);
        if let Some(n) = self.max_processes {
            c.count("max_processes", n, self.processes, MAX_PROCESSES);
        }
        if let Some(mb) = self.max_rss_mb {
            if mb == 0 {
                c.problem_at("max_rss_mb", "must be at least 1");
            }
        }
        if let Some(w) = self.tdp_watts {
            c.positive("tdp_watts", w);
        }
        if let Some(t) = self.tdp_threads {
            c.positive("tdp_threads", t);
        }
        if !self.timed.contains(&Stage::Forward) {
            c.problem_at("timed", "must include `forward`");
        }
    }
}

impl CheckConfig {
    /// Every threshold in the range the suite's `[check]` table allows.
    pub fn check_values(&self, c: &mut Checker) {
        for key in CheckConfig::keys() {
            let value = self.get(key).expect("keys() lists the keys get() knows");
            if let Some(range) = CheckConfig::out_of_range(key, value) {
                c.problem_at(
                    key,
                    format!("must be {}, got {value} ({})", range.bound, range.hint),
                );
            }
        }
    }
}

impl Shard {
    /// Shard K of N exists: 1 <= K <= N.
    pub fn check_values(&self, c: &mut Checker) {
        if self.count == 0 || self.index == 0 || self.index > self.count {
            c.problem(format!(
                "shard {}/{} does not exist: K/N needs 1 <= K <= N",
                self.index, self.count
            ));
        }
    }
}

impl LatencyMs {
    /// At least one sample, none negative, and a summary of figures that are not negative.
    pub fn check_values(&self, c: &mut Checker) {
        c.samples("samples", &self.samples);
        let s = &self.summary;
        if s.count == 0 {
            c.problem_at("count", "must be at least 1");
        }
        for (name, x) in [
            ("mean", s.mean),
            ("stdev", s.stdev),
            ("min", s.min),
            ("p50", s.p50),
            ("p90", s.p90),
            ("p95", s.p95),
            ("p99", s.p99),
            ("p999", s.p999),
            ("max", s.max),
        ] {
            c.non_negative(name, x);
        }
        for (name, ci) in [("p50_ci", s.p50_ci), ("p99_ci", s.p99_ci)] {
            c.at(name, |c| {
                c.non_negative("0", ci[0]);
                c.non_negative("1", ci[1]);
                if ci[0] > ci[1] {
                    c.problem(format!("the interval [{}, {}] is reversed", ci[0], ci[1]));
                }
            });
        }
    }
}

impl CaseResult {
    /// The case's own rules (its id's uniqueness is the run's).
    pub fn check_values(&self, c: &mut Checker) {
        if self.id.trim().is_empty() {
            c.problem_at("id", "must not be empty");
        }
        c.count("threads", self.threads, 1, usize::MAX);
        c.count("batch_size", self.batch_size, 1, usize::MAX);
        if let Some(l) = &self.latency_ms {
            c.at("latency_ms", |c| l.check_values(c));
        }
        if let Some(stages) = &self.stages {
            c.at("stages", |c| {
                for (name, l) in stages {
                    c.key(name, |c| l.check_values(c));
                }
            });
        }
        for (name, x) in [
            ("throughput_per_s", self.throughput_per_s),
            ("warmup_s", self.warmup_s),
            ("measured_s", self.measured_s),
            ("noise", self.noise),
            ("clock_overhead_ns", self.clock_overhead_ns),
            ("build_s", self.build_s),
        ] {
            c.opt_non_negative(name, x);
        }
        if let Some(p) = &self.processes {
            c.at("processes", |c| p.check_values(c));
        }
        if let Some(e) = &self.energy {
            c.at("energy", |c| e.check_values(c));
        }
        if let Some(q) = &self.quality {
            c.at("quality", |c| q.check_values(c));
        }
        if let Some(f) = &self.output_fidelity {
            c.at("output_fidelity", |c| f.check_values(c));
        }
        if let Some(cold) = &self.cold_start {
            c.at("cold_start", |c| {
                c.non_negative("load_ms", cold.load_ms);
                c.non_negative("first_inference_ms", cold.first_inference_ms);
                c.non_negative("warmup_ms", cold.warmup_ms);
            });
        }
        if let Some(p) = &self.profile {
            c.at("profile", |c| p.check_values(c));
        }
        if let Some(ScenarioRecord::Server(s)) = &self.record {
            c.at("server", |c| s.check_values(c));
        }
    }
}

impl ProcessFigures {
    /// One entry per process in every list (the optional ones may be empty), none negative.
    pub fn check_values(&self, c: &mut Checker) {
        let n = self.len();
        if n == 0 {
            c.problem_at(
                "latency_p50_ms",
                "is empty: a case has at least one process",
            );
        }
        let lists: [(&str, Vec<f64>, bool); 9] = [
            (
                "samples",
                self.samples.iter().map(|&x| x as f64).collect(),
                false,
            ),
            ("measured_s", self.measured_s.clone(), false),
            ("latency_p50_ms", self.latency_p50_ms.clone(), false),
            ("latency_p99_ms", self.latency_p99_ms.clone(), false),
            ("latency_mean_ms", self.latency_mean_ms.clone(), false),
            ("throughput_per_s", self.throughput_per_s.clone(), false),
            (
                "joules_per_inference",
                self.joules_per_inference.clone(),
                true,
            ),
            (
                "peak_rss_bytes",
                self.peak_rss_bytes.iter().map(|&x| x as f64).collect(),
                false,
            ),
            ("reference_us", self.reference_us.clone(), true),
        ];
        for (name, xs, optional) in lists {
            if xs.len() != n && !(optional && xs.is_empty()) {
                c.problem_at(
                    name,
                    format!(
                        "holds {} entries, one per process is {n}{}",
                        xs.len(),
                        if optional { " (or none)" } else { "" }
                    ),
                );
            }
            c.at(name, |c| {
                for (i, &x) in xs.iter().enumerate() {
                    if x < 0.0 {
                        c.item(i, |c| c.problem(format!("must not be negative, got {x}")));
                    }
                }
            });
        }
    }
}

impl EnergyInfo {
    pub fn check_values(&self, c: &mut Checker) {
        for (name, x) in [
            ("joules", self.joules),
            ("joules_per_inference", self.joules_per_inference),
            ("inferences_per_joule", self.inferences_per_joule),
            ("avg_watts", self.avg_watts),
            ("window_s", self.window_s),
        ] {
            c.non_negative(name, x);
        }
        c.opt_non_negative("idle_watts", self.idle_watts);
    }
}

impl QualityInfo {
    /// Scores are fractions; the confusion matrix is square, one row per class, and counts
    /// every sample once.
    pub fn check_values(&self, c: &mut Checker) {
        for (name, x) in [
            ("accuracy", self.accuracy),
            ("precision_macro", self.precision_macro),
            ("recall_macro", self.recall_macro),
            ("f1_macro", self.f1_macro),
            ("precision_weighted", self.precision_weighted),
            ("recall_weighted", self.recall_weighted),
            ("f1_weighted", self.f1_weighted),
        ] {
            c.between(name, x, 0.0, 1.0);
        }
        let n = self.confusion_matrix.len();
        c.at("confusion_matrix", |c| {
            for (i, row) in self.confusion_matrix.iter().enumerate() {
                if row.len() != n {
                    c.item(i, |c| {
                        c.problem(format!(
                            "holds {} entries; the matrix is {n} x {n}",
                            row.len()
                        ))
                    });
                }
            }
        });
        let counted = self
            .confusion_matrix
            .iter()
            .flatten()
            .try_fold(0u64, |sum, &x| sum.checked_add(x));
        if counted != Some(self.samples as u64) {
            c.problem_at(
                "confusion_matrix",
                format!(
                    "counts {} samples, `samples` says {}: every scored sample is counted once",
                    counted.map_or("more than 2^64".to_string(), |n| n.to_string()),
                    self.samples
                ),
            );
        }
        if !self.per_class.is_empty() && self.per_class.len() != n {
            c.problem_at(
                "per_class",
                format!(
                    "holds {} classes, the confusion matrix {n}",
                    self.per_class.len()
                ),
            );
        }
        if let Some(f) = &self.fidelity {
            c.at("fidelity", |c| {
                c.between("top1_agreement", f.top1_agreement, 0.0, 1.0)
            });
        }
    }
}

impl OutputFidelity {
    /// Agreement is a fraction, cosines lie in [-1, 1], differences are not negative, and
    /// there is at least one sample of at least one value.
    pub fn check_values(&self, c: &mut Checker) {
        if let Some(a) = self.top1_agreement {
            c.between("top1_agreement", a, 0.0, 1.0);
        }
        // A cosine computed in f64 from f32 values may exceed 1 by a rounding step.
        c.between("mean_cosine", self.mean_cosine, -1.000001, 1.000001);
        c.between("min_cosine", self.min_cosine, -1.000001, 1.000001);
        c.non_negative("max_abs_diff", self.max_abs_diff);
        c.count("samples", self.samples, 1, super::validate::MAX_ITEMS);
        c.count("width", self.width, 1, super::validate::MAX_ITEMS);
    }
}

impl LayerProfile {
    /// Layer timings that are not negative; shares are fractions.
    pub fn check_values(&self, c: &mut Checker) {
        c.at("layers", |c| {
            for (i, l) in self.layers.iter().enumerate() {
                c.item(i, |c| {
                    c.samples("samples_ms", &l.samples_ms);
                    c.non_negative("mean_ms", l.mean_ms);
                    c.non_negative("min_ms", l.min_ms);
                    c.non_negative("stdev_ms", l.stdev_ms);
                    c.non_negative("gflops", l.gflops);
                    c.between("share", l.share, 0.0, 1.0);
                });
            }
        });
        c.non_negative("layer_sum_mean_ms", self.layer_sum_mean_ms);
        c.non_negative("forward_mean_ms", self.forward_mean_ms);
        c.non_negative("noise", self.noise);
    }
}

impl ServerInfo {
    /// Rates and times that are not negative; the search's probes likewise.
    pub fn check_values(&self, c: &mut Checker) {
        for (name, x) in [
            ("offered_qps", self.offered_qps),
            ("achieved_qps", self.achieved_qps),
            ("duration_s", self.duration_s),
            ("drain_s", self.drain_s),
            ("max_wait_ms", self.max_wait_ms),
            ("mean_batch", self.mean_batch),
        ] {
            c.non_negative(name, x);
        }
        c.opt_non_negative("target_qps", self.target_qps);
        c.opt_non_negative("late_ms", self.late_ms);
        if let Some(s) = &self.search {
            c.at("search", |c| {
                c.non_negative("p99_bound_ms", s.p99_bound_ms);
                c.opt_non_negative("max_qps", s.max_qps);
                c.opt_non_negative("failing_qps", s.failing_qps);
                c.at("probes", |c| {
                    for (i, p) in s.probes.iter().enumerate() {
                        c.item(i, |c| {
                            c.non_negative("target_qps", p.target_qps);
                            c.non_negative("offered_qps", p.offered_qps);
                            c.non_negative("achieved_qps", p.achieved_qps);
                        });
                    }
                });
            });
        }
    }
}

impl Peaks {
    /// Every problem of a peaks record (a cache file, or the copy a run carries).
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut c = Checker::new();
        scan(self, &mut c);
        self.check_values(&mut c);
        c.finish()
    }

    /// Peaks measured per thread count: counts of at least one, figures above zero.
    pub fn check_values(&self, c: &mut Checker) {
        c.at("by_threads", |c| {
            for (i, p) in self.by_threads.iter().enumerate() {
                c.item(i, |c| {
                    c.count("threads", p.threads, 1, usize::MAX);
                    c.positive("bandwidth_gbs", p.bandwidth_gbs);
                    c.positive("matmul_gflops", p.matmul_gflops);
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunResult {
        let text = include_str!("../../tests/fixtures/runs/small.json");
        serde_json::from_str(text).unwrap()
    }

    fn paths(r: &RunResult) -> Vec<String> {
        r.validate()
            .unwrap_err()
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn a_real_run_is_valid() {
        assert_eq!(run().validate(), Ok(()));
    }

    #[test]
    fn thresholds_out_of_range_are_named() {
        let mut r = run();
        r.check.significance = 0.0;
        r.check.min_samples = 0;
        r.check.latency_p50 = 1.5e308;
        assert_eq!(
            paths(&r),
            [
                "check.latency_p50",
                "check.significance",
                "check.min_samples"
            ]
        );
        r = run();
        r.check.significance = 1.5;
        let problems = r.validate().unwrap_err();
        assert!(
            problems[0].reason.contains("between 0 and 0.5"),
            "{problems:?}"
        );
    }

    #[test]
    fn empty_or_negative_samples_and_duplicate_ids_are_named() {
        let mut r = run();
        r.cases[0].latency_ms.as_mut().unwrap().samples.clear();
        r.cases[1].latency_ms.as_mut().unwrap().samples[7] = -1.0;
        assert_eq!(
            paths(&r),
            [
                "cases[0].latency_ms.samples",
                "cases[1].latency_ms.samples[7]"
            ]
        );
        let mut r = run();
        r.cases[1].id = r.cases[0].id.clone();
        assert_eq!(paths(&r), ["cases[1].id"]);
    }

    #[test]
    fn figures_beyond_measurement_and_impossible_settings_are_named() {
        let mut r = run();
        r.cases[1].throughput_per_s = Some(f64::NAN);
        r.settings.bootstrap_resamples = 1 << 40;
        r.shard = Some(Shard { index: 0, count: 2 });
        assert_eq!(
            paths(&r),
            [
                "cases[1].throughput_per_s",
                "settings.bootstrap_resamples",
                "shard"
            ]
        );
    }
}
