//! The collect step: a case's `CaseResult` assembled from its worker outcomes (statistics,
//! status, pooled processes; the scenario kind adds its own), and the suite's record in the run.

use crate::plan::Case;
use crate::schema::{
    CaseResult, CaseStatus, EnergyInfo, LatencyMs, ModelInfo, ProcessFigures, StopReason, SuiteInfo,
};
use crate::stats;
use crate::suite::Suite;
use crate::worker::protocol::Measurement;
use crate::worker::Outcome;

/// The suite as a run file records it.
pub fn suite_info(suite: &Suite) -> SuiteInfo {
    SuiteInfo {
        name: suite.name.clone(),
        description: suite.description.clone(),
        file: suite.path.clone(),
        sha256: suite.sha256.clone(),
    }
}

/// The figures of each measurement, in order.
pub fn process_figures(measurements: &[Measurement], batch_size: usize) -> ProcessFigures {
    let mut f = ProcessFigures::default();
    for m in measurements {
        let mut sorted = m.samples_ms.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let at = |q| {
            if sorted.is_empty() {
                f64::NAN
            } else {
                stats::percentile(&sorted, q)
            }
        };
        f.samples.push(sorted.len());
        f.measured_s.push(m.measured_s);
        f.latency_p50_ms.push(at(0.5));
        f.latency_p99_ms.push(at(0.99));
        f.latency_mean_ms.push(stats::mean(&sorted));
        f.throughput_per_s.push(if m.measured_s > 0.0 {
            (sorted.len() * batch_size) as f64 / m.measured_s
        } else {
            f64::NAN
        });
        f.peak_rss_bytes.push(m.memory.peak_rss_bytes);
    }
    if let Some(r) = measurements.iter().map(reference_median_us).collect() {
        f.reference_us = r;
    }
    if let Some(s) = measurements
        .iter()
        .map(|m| m.sched)
        .collect::<Option<Vec<_>>>()
    {
        f.run_queue_share = s.iter().map(|s| s.run_queue_share()).collect();
        f.involuntary_switches_per_s = s.iter().map(|s| s.involuntary_per_s()).collect();
    }
    if measurements.iter().all(|m| m.energy.is_some()) {
        f.joules_per_inference = measurements
            .iter()
            .filter_map(|m| m.energy.as_ref().map(|e| e.joules_per_inference))
            .collect();
    }
    f
}

/// The median of a process's reference-kernel readings (µs), if it took any.
pub fn reference_median_us(m: &Measurement) -> Option<f64> {
    let mut r: Vec<f64> = m
        .reference_us
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if r.is_empty() {
        return None;
    }
    r.sort_unstable_by(f64::total_cmp);
    Some(stats::percentile(&r, 0.5))
}

/// Joins the measurements of several worker processes of one case into one: samples (and
/// stage samples) concatenated in run order, times and energy summed, memory peaks the
/// largest, cold start and model figures from the first process. `None` when empty.
pub fn pool_measurements(measurements: Vec<Measurement>) -> Option<Measurement> {
    let mut it = measurements.into_iter();
    let mut pooled = it.next()?;
    let mut processes = 1.0;
    for m in it {
        processes += 1.0;
        pooled.samples_ms.extend_from_slice(&m.samples_ms);
        pooled.warmup_iterations += m.warmup_iterations;
        pooled.warmup_s += m.warmup_s;
        pooled.measured_s += m.measured_s;
        // A process that did not converge makes the pooled case as doubtful as it was; one
        // cut short by its budget, most doubtful of all.
        if pooled.stop_reason == StopReason::Converged || m.stop_reason == StopReason::Budget {
            pooled.stop_reason = m.stop_reason;
        }
        pooled.noise = pooled.noise.max(m.noise);
        pooled.clock_overhead_ns += m.clock_overhead_ns;
        let mem = &mut pooled.memory;
        mem.peak_rss_bytes = mem.peak_rss_bytes.max(m.memory.peak_rss_bytes);
        mem.peak_heap_bytes = match (mem.peak_heap_bytes, m.memory.peak_heap_bytes) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        pooled.energy = match (pooled.energy.take(), m.energy) {
            (Some(a), Some(b)) if a.method == b.method => Some(add_energy(a, &b)),
            // Different methods cannot be added: no energy figure rather than a mixed one.
            _ => None,
        };
        for (stage, samples) in m.stage_samples_ms {
            match pooled
                .stage_samples_ms
                .iter_mut()
                .find(|(s, _)| *s == stage)
            {
                Some((_, all)) => all.extend_from_slice(&samples),
                None => pooled.stage_samples_ms.push((stage, samples)),
            }
        }
    }
    pooled.clock_overhead_ns /= processes;
    Some(pooled)
}

fn add_energy(mut a: EnergyInfo, b: &EnergyInfo) -> EnergyInfo {
    a.joules += b.joules;
    a.joules_raw += b.joules_raw;
    a.window_s += b.window_s;
    a.inferences += b.inferences;
    a.joules_per_inference = if a.inferences > 0 {
        a.joules / a.inferences as f64
    } else {
        f64::NAN
    };
    a.inferences_per_joule = if a.joules > 0.0 {
        a.inferences as f64 / a.joules
    } else {
        f64::NAN
    };
    a.avg_watts = if a.window_s > 0.0 {
        a.joules / a.window_s
    } else {
        f64::NAN
    };
    if let (Some(ea), Some(eb)) = (a.estimate.as_mut(), b.estimate.as_ref()) {
        ea.cpu_time_s += eb.cpu_time_s;
    }
    a
}

/// A case's result without measured figures: identity, settings, the variant's figures.
fn bare(case: &Case, status: CaseStatus, error: Option<String>) -> CaseResult {
    CaseResult {
        id: case.id.clone(),
        model_name: case.model.clone(),
        variant: case.variant.clone(),
        target: case.target.label.clone(),
        device: case.target.device.to_string(),
        threads: case.target.threads,
        scenario: case.scenario.kind(),
        batch_size: case.batch_size,
        status,
        error,
        latency_ms: None,
        throughput_per_s: None,
        warmup_iterations: None,
        warmup_s: None,
        measured_s: None,
        stop_reason: None,
        noise: None,
        threads_in_effect: None,
        model: case.model_info.clone().unwrap_or(ModelInfo {
            params: case.arch.kind().param_count(),
            weight_bytes: 0,
            flops_per_sample: case.arch.kind().flops_per_sample(),
            ..ModelInfo::default()
        }),
        clock_overhead_ns: None,
        build_s: None,
        memory: None,
        energy: None,
        load: None,
        cold_start: None,
        timed: case
            .settings
            .timed
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        stages: None,
        quality: case.quality.clone(),
        processes: None,
        bytes_per_batch: None,
        roofline: None,
        profile: None,
        record: case.scenario.record(),
        embedding: case.embedding.clone(),
        llm_quality: case.llm_quality.clone(),
        output_fidelity: case.output_fidelity.clone(),
    }
}

/// A case that was not run, with the reason.
pub fn skipped(case: &Case, reason: String) -> CaseResult {
    bare(case, CaseStatus::Skipped, Some(reason))
}

/// A case not run because one pass would outlast its time budget (`--quick`): `partial`,
/// stop reason `budget`, no figures.
pub fn not_run_over_budget(case: &Case, reason: String) -> CaseResult {
    let mut r = bare(case, CaseStatus::Partial, Some(reason));
    r.stop_reason = Some(StopReason::Budget);
    r
}

/// The collect step for a case measured by several worker processes: a failure of any
/// process fails the case (with the first reason); otherwise the pooled measurement, with
/// each process's own figures in `processes`.
pub fn from_outcomes(case: &Case, outcomes: Vec<Outcome>) -> CaseResult {
    let count = outcomes.len();
    let mut measurements = Vec::with_capacity(count);
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Measured(m) => measurements.push(*m),
            other if count == 1 => return from_outcome(case, other),
            Outcome::Failed(reason) => {
                let reason = format!("process {} of {count}: {reason}", i + 1);
                return bare(case, CaseStatus::Failed, Some(reason));
            }
            Outcome::Interrupted => return from_outcome(case, Outcome::Interrupted),
            Outcome::Unavailable(reason) => return skipped(case, reason),
        }
    }
    let figures = (measurements.len() > 1).then(|| process_figures(&measurements, case.batch_size));
    let mut r = match pool_measurements(measurements) {
        Some(m) => from_outcome(case, Outcome::Measured(Box::new(m))),
        None => bare(
            case,
            CaseStatus::Failed,
            Some("no worker process ran".into()),
        ),
    };
    r.processes = figures;
    r
}

/// The collect step: statistics and status from a worker's outcome.
pub fn from_outcome(case: &Case, outcome: Outcome) -> CaseResult {
    let m: Measurement = match outcome {
        Outcome::Failed(reason) => return bare(case, CaseStatus::Failed, Some(reason)),
        Outcome::Unavailable(reason) => return skipped(case, reason),
        Outcome::Interrupted => {
            return bare(
                case,
                CaseStatus::Failed,
                Some("interrupted before the case finished".into()),
            )
        }
        Outcome::Measured(m) => *m,
    };
    let s = &case.settings;
    let summary = stats::summarize(&m.samples_ms, s.bootstrap_resamples, s.seed);
    let count = m.samples_ms.len();
    let (status, error) = match &summary {
        None => (
            CaseStatus::Failed,
            Some("no valid latency samples".to_string()),
        ),
        Some(_) if m.stop_reason == StopReason::Budget => (
            CaseStatus::Partial,
            Some(format!(
                "cut short by the time budget of {} s per process (--quick): {count} samples in {:.2} s, short of {}",
                s.budget_s.map_or_else(|| "?".into(), |b| b.to_string()),
                m.measured_s,
                match &case.scenario {
                    crate::scenario::ScenarioCase::MultiStream(q) =>
                        format!("the scenario's {} queries", q.queries),
                    _ => format!(
                        "min_iterations = {} or min_time_s = {}",
                        s.min_iterations, s.min_time_s
                    ),
                }
            )),
        ),
        Some(_) if (count as u64) < s.min_iterations => (
            CaseStatus::Noisy,
            Some(format!(
                "only {count} of min_iterations = {} samples before sampling stopped",
                s.min_iterations
            )),
        ),
        Some(_) if m.noise > s.max_noise => (
            CaseStatus::Noisy,
            Some(format!(
                "median CI half-width {:.2}% exceeds max_noise {:.2}% ({} samples, stopped by {})",
                m.noise * 100.0,
                s.max_noise * 100.0,
                count,
                match m.stop_reason {
                    StopReason::MaxTime => "max_time_s",
                    StopReason::MaxSamples => "max_samples",
                    StopReason::Converged => "the stopping rule",
                    StopReason::Queries => "the scenario's query count",
                    StopReason::Budget => "the time budget",
                }
            )),
        ),
        Some(_) => (CaseStatus::Ok, None),
    };
    let throughput = (m.measured_s > 0.0).then(|| (count * case.batch_size) as f64 / m.measured_s);
    let mut r = bare(case, status, error);
    r.latency_ms = summary.map(|summary| LatencyMs {
        samples: m.samples_ms,
        summary,
    });
    r.throughput_per_s = throughput;
    r.warmup_iterations = Some(m.warmup_iterations);
    r.warmup_s = Some(m.warmup_s);
    r.measured_s = Some(m.measured_s);
    r.stop_reason = Some(m.stop_reason);
    r.noise = Some(m.noise);
    r.threads_in_effect = Some(m.threads);
    r.model.params = m.params;
    r.model.weight_bytes = m.weight_bytes;
    r.model.flops_per_sample = m.flops_per_sample;
    r.clock_overhead_ns = Some(m.clock_overhead_ns);
    r.build_s = Some(m.build_s);
    r.memory = Some(m.memory);
    r.energy = m.energy;
    r.cold_start = Some(m.cold_start);
    r.bytes_per_batch = m.traffic_bytes_per_batch;
    if let (Some(raw), Some(l)) = (m.profile, &r.latency_ms) {
        r.profile = Some(crate::profile::summarize(raw, case.batch_size, &l.samples));
    }
    // The kind's figures from its raw record (server: the reported run's latency and rate).
    case.scenario.assemble(m.scenario.as_ref(), &mut r, s);
    if !m.stage_samples_ms.is_empty() {
        r.stages = Some(
            m.stage_samples_ms
                .into_iter()
                .filter_map(|(stage, samples)| {
                    let summary = stats::summarize(&samples, s.bootstrap_resamples, s.seed)?;
                    Some((stage.as_str().to_string(), LatencyMs { samples, summary }))
                })
                .collect(),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::tests::measurement;

    #[test]
    fn pooling_concatenates_samples_sums_time_and_energy_and_keeps_the_peaks() {
        let a = measurement(&[1.0, 2.0, 3.0], 0.006, 1000, 3.0);
        let mut b = measurement(&[4.0, 5.0], 0.009, 3000, 1.0);
        b.stop_reason = StopReason::MaxTime;
        let figures = process_figures(&[a.clone(), b.clone()], 2);
        let p = pool_measurements(vec![a, b]).unwrap();
        assert_eq!(p.samples_ms, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p.measured_s - 0.015).abs() < 1e-12);
        assert_eq!(p.warmup_iterations, 20);
        assert_eq!(p.stop_reason, StopReason::MaxTime);
        assert_eq!(p.memory.peak_rss_bytes, 3000);
        let e = p.energy.unwrap();
        assert_eq!((e.joules, e.inferences), (4.0, 5));
        assert!((e.joules_per_inference - 0.8).abs() < 1e-12);
        assert!((e.estimate.unwrap().cpu_time_s - 0.015).abs() < 1e-12);
        // Per-process figures: medians 2 and 4.5, throughput with batch 2.
        assert_eq!(figures.latency_p50_ms, vec![2.0, 4.5]);
        assert_eq!(figures.samples, vec![3, 2]);
        assert!((figures.throughput_per_s[0] - 1000.0).abs() < 1e-9);
        assert_eq!(figures.joules_per_inference, vec![1.0, 0.5]);
        assert_eq!(figures.peak_rss_bytes, vec![1000, 3000]);
        assert!(pool_measurements(vec![]).is_none());
    }

    #[test]
    fn each_process_keeps_what_the_scheduler_did_to_it() {
        use crate::probe::sched::{SchedCounts, SchedFigures};
        let sched = |wait_s: f64, switches: u64| SchedFigures {
            window_s: 0.5,
            main_thread: SchedCounts {
                on_cpu_s: 0.4,
                run_queue_wait_s: wait_s,
                involuntary_switches: switches,
            },
            all_threads: SchedCounts::default(),
            process_cpu_s: 0.5,
            one_core: false,
            readings: 4,
        };
        let mut a = measurement(&[1.0], 0.001, 1, 1.0);
        a.sched = Some(sched(0.0, 5));
        let mut b = measurement(&[1.0], 0.001, 1, 1.0);
        b.sched = Some(sched(0.1, 100));
        let f = process_figures(&[a.clone(), b.clone()], 1);
        assert_eq!(f.run_queue_share, vec![0.0, 0.2]);
        assert_eq!(f.involuntary_switches_per_s, vec![10.0, 200.0]);
        // A process without the figures (another kernel): none for the case.
        b.sched = None;
        assert!(process_figures(&[a, b], 1).run_queue_share.is_empty());
    }

    #[test]
    fn energy_of_different_methods_is_not_added() {
        let a = measurement(&[1.0], 0.001, 1, 1.0);
        let mut b = measurement(&[1.0], 0.001, 1, 1.0);
        b.energy.as_mut().unwrap().method = crate::schema::EnergyMethod::Rapl;
        assert!(pool_measurements(vec![a, b]).unwrap().energy.is_none());
    }
}
