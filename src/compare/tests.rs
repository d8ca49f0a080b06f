//! Verdicts on synthetic samples: every kind, the rule's edges, comparability.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::schema::{
    LatencyMs, ModelInfo, RunStatus, Scenario, Settings, SuiteInfo, ThreadsInEffect, SCHEMA_VERSION,
};

/// Log-normal latencies around `median` ms with a 5% spread, seeded.
pub(crate) fn latencies(n: usize, median: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let z: f64 = rng.sample(rand_distr::StandardNormal);
            median * (0.05 * z).exp()
        })
        .collect()
}

pub(crate) fn case(id: &str, samples: Vec<f64>, status: CaseStatus) -> CaseResult {
    let summary = crate::stats::summarize(&samples, 1000, 1);
    let total_ms: f64 = samples.iter().sum();
    let n = samples.len();
    CaseResult {
        id: id.into(),
        model_name: "m".into(),
        variant: "baseline".into(),
        target: "cpu-t1".into(),
        device: "cpu".into(),
        threads: 1,
        scenario: Scenario::SingleStream,
        batch_size: 1,
        status,
        error: None,
        throughput_per_s: summary.as_ref().map(|_| n as f64 / (total_ms / 1000.0)),
        latency_ms: summary.map(|summary| LatencyMs { samples, summary }),
        warmup_iterations: None,
        warmup_s: None,
        measured_s: None,
        stop_reason: None,
        noise: None,
        threads_in_effect: Some(ThreadsInEffect {
            requested: 1,
            rayon_pool: 1,
            candle: 1,
            env: Default::default(),
            affinity: vec![0],
        }),
        model: ModelInfo {
            params: 100,
            weight_bytes: 400,
            flops_per_sample: 200,
            ..Default::default()
        },
        clock_overhead_ns: None,
        build_s: None,
        memory: None,
        energy: None,
        load: None,
        cold_start: None,
        timed: vec!["forward".into()],
        stages: None,
        quality: None,
        processes: None,
        bytes_per_batch: None,
        roofline: None,
        profile: None,
        record: None,
        embedding: None,
        llm_quality: None,
        output_fidelity: None,
    }
}

/// A case measured by several processes whose medians are `p50s` (each process: 200
/// log-normal samples around its own median).
fn case_with_processes(id: &str, p50s: &[f64], seed: u64) -> CaseResult {
    let per: Vec<Vec<f64>> = p50s
        .iter()
        .enumerate()
        .map(|(i, &m)| latencies(200, m, seed + i as u64))
        .collect();
    let mut c = case(id, per.concat(), CaseStatus::Ok);
    let mut f = crate::schema::ProcessFigures::default();
    for s in &per {
        let mut sorted = s.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let total_s: f64 = s.iter().sum::<f64>() / 1000.0;
        f.samples.push(s.len());
        f.measured_s.push(total_s);
        f.latency_p50_ms
            .push(crate::stats::percentile(&sorted, 0.5));
        f.latency_p99_ms
            .push(crate::stats::percentile(&sorted, 0.99));
        f.latency_mean_ms.push(crate::stats::mean(s));
        f.throughput_per_s.push(s.len() as f64 / total_s);
        f.peak_rss_bytes.push(1 << 20);
    }
    c.processes = Some(f);
    c
}

fn failed(id: &str) -> CaseResult {
    let mut c = case(id, vec![], CaseStatus::Failed);
    c.error = Some("worker crashed".into());
    c.model.weight_bytes = 0;
    c.threads_in_effect = None;
    c
}

fn run(cases: Vec<CaseResult>) -> RunResult {
    RunResult {
        schema_version: SCHEMA_VERSION,
        suite: SuiteInfo {
            name: "s".into(),
            description: String::new(),
            file: "suites/s.toml".into(),
            sha256: "ab".repeat(32),
        },
        started_at: DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        finished_at: None,
        status: RunStatus::Complete,
        quick: false,
        filter: None,
        settings: Settings::default(),
        environment: crate::probe::env::capture(),
        cases,
        check: CheckConfig::default(),
        shard: None,
        merged_from: Vec::new(),
        injected_slowdown: None,
        peaks: None,
    }
}

fn one(b: CaseResult, c: CaseResult) -> CaseComparison {
    compare_case(&b, &c, &CheckConfig::default(), 2000, 7, None, &())
}

pub(crate) fn verdict_of(cc: &CaseComparison, metric: &str) -> Verdict {
    cc.metrics
        .iter()
        .find(|m| m.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} in {cc:#?}"))
        .verdict
}

#[test]
fn same_distribution_is_unchanged() {
    let cc = one(
        case("a", latencies(3000, 2.0, 1), CaseStatus::Ok),
        case("a", latencies(3000, 2.0, 2), CaseStatus::Ok),
    );
    for m in ["latency_p50", "latency_p99", "throughput", "weight_bytes"] {
        assert_eq!(verdict_of(&cc, m), Verdict::Unchanged, "{m}: {cc:#?}");
    }
    assert_eq!(cc.verdict, Verdict::Unchanged);
}

#[test]
fn a_twenty_percent_slowdown_regresses_every_timing() {
    let slow: Vec<f64> = latencies(3000, 2.0, 2).iter().map(|x| x * 1.2).collect();
    let cc = one(
        case("a", latencies(3000, 2.0, 1), CaseStatus::Ok),
        case("a", slow, CaseStatus::Ok),
    );
    for m in ["latency_p50", "latency_p99", "throughput"] {
        assert_eq!(verdict_of(&cc, m), Verdict::Regressed, "{m}: {cc:#?}");
    }
    let p50 = &cc.metrics[0];
    assert_eq!(p50.metric, "latency_p50");
    let change = p50.change.unwrap();
    let [lo, hi] = p50.change_ci.unwrap();
    assert!((change - 0.2).abs() < 0.01 && lo <= change && change <= hi && lo > 0.04);
    assert!(p50.p_value.unwrap() < 1e-10);
    assert_eq!(p50.threshold, 0.04);
    // Throughput falls by 1 - 1/1.2 = 16.7%.
    let t = cc
        .metrics
        .iter()
        .find(|m| m.metric == "throughput")
        .unwrap();
    assert!((t.change.unwrap() + 1.0 / 6.0).abs() < 0.01, "{t:?}");
    assert_eq!(cc.verdict, Verdict::Regressed);
}

#[test]
fn a_twenty_percent_speedup_improves() {
    let fast: Vec<f64> = latencies(3000, 2.0, 2).iter().map(|x| x * 0.8).collect();
    let cc = one(
        case("a", latencies(3000, 2.0, 1), CaseStatus::Ok),
        case("a", fast, CaseStatus::Ok),
    );
    for m in ["latency_p50", "latency_p99", "throughput"] {
        assert_eq!(verdict_of(&cc, m), Verdict::Improved, "{m}");
    }
    assert_eq!(cc.verdict, Verdict::Improved);
}

#[test]
fn a_real_two_percent_change_is_unchanged_at_the_default_threshold() {
    let slow: Vec<f64> = latencies(3000, 2.0, 2).iter().map(|x| x * 1.02).collect();
    let cc = one(
        case("a", latencies(3000, 2.0, 1), CaseStatus::Ok),
        case("a", slow, CaseStatus::Ok),
    );
    let p50 = &cc.metrics[0];
    assert!(p50.p_value.unwrap() < 0.01, "the test sees it: {p50:?}");
    assert_eq!(p50.verdict, Verdict::Unchanged, "{p50:?}");
    assert!(p50.reason.contains("within 4%"), "{}", p50.reason);
    assert_ne!(cc.verdict, Verdict::Regressed);
}

#[test]
fn an_interval_straddling_the_threshold_is_inconclusive() {
    // A 4% change measured to about +-0.5%: the interval crosses the 4% threshold.
    let slow: Vec<f64> = latencies(3000, 2.0, 2).iter().map(|x| x * 1.04).collect();
    let cc = one(
        case("a", latencies(3000, 2.0, 1), CaseStatus::Ok),
        case("a", slow, CaseStatus::Ok),
    );
    let p50 = &cc.metrics[0];
    assert_eq!(p50.verdict, Verdict::Inconclusive, "{p50:?}");
    assert!(p50.reason.contains("straddles"), "{}", p50.reason);
}

#[test]
fn too_few_samples_are_inconclusive_and_p99_needs_a_tail() {
    let cc = one(
        case("a", latencies(5, 2.0, 1), CaseStatus::Noisy),
        case("a", latencies(5, 4.0, 2), CaseStatus::Ok),
    );
    let p50 = &cc.metrics[0];
    assert_eq!(p50.verdict, Verdict::Inconclusive);
    assert!(
        p50.reason.contains("too few samples (5 vs 5; 10 needed"),
        "{}",
        p50.reason
    );
    assert!(p50.reason.contains("baseline case noisy"), "{}", p50.reason);
    // 500 samples decide the median but not the 99th percentile.
    let cc = one(
        case("a", latencies(500, 2.0, 1), CaseStatus::Ok),
        case("a", latencies(500, 2.0, 2), CaseStatus::Ok),
    );
    assert_eq!(verdict_of(&cc, "latency_p50"), Verdict::Unchanged);
    assert_eq!(verdict_of(&cc, "latency_p99"), Verdict::Inconclusive);
    assert_eq!(cc.verdict, Verdict::Inconclusive);
    assert_eq!(samples_needed(0.99, 10), 1000);
    assert_eq!(samples_needed(0.5, 10), 10);
}

#[test]
fn failed_and_skipped_cases() {
    // Failed in the candidate only: a regression, whatever the noise.
    let cc = one(
        case("a", latencies(100, 2.0, 1), CaseStatus::Ok),
        failed("a"),
    );
    assert_eq!(cc.verdict, Verdict::Regressed);
    assert_eq!(cc.metrics[0].metric, "status");
    assert!(cc.metrics[0].reason.contains("worker crashed"));
    assert!(cc.metrics[1..].iter().all(
        |m| m.verdict == Verdict::Inconclusive && m.reason.contains("missing in the candidate")
    ));
    // Failed in the baseline: nothing to hold the candidate against.
    let cc = one(
        failed("a"),
        case("a", latencies(100, 2.0, 1), CaseStatus::Ok),
    );
    assert_eq!(cc.verdict, Verdict::Inconclusive);
    assert!(cc
        .metrics
        .iter()
        .all(|m| m.reason.contains("missing in the baseline")));
    // Skipped on both sides.
    let mut s = failed("a");
    s.status = CaseStatus::Skipped;
    let cc = one(s.clone(), s);
    assert_eq!(cc.verdict, Verdict::Inconclusive);
    assert_eq!(cc.metrics.len(), 1);
    assert!(cc.metrics[0].reason.contains("nothing to compare"));
}

#[test]
fn exact_and_point_metrics() {
    let cfg = CheckConfig::default();
    let b = MetricValue::exact("weight_bytes", "B", Better::Lower, 400.0, |t| {
        t.weight_bytes
    });
    let bigger = MetricValue::exact("weight_bytes", "B", Better::Lower, 404.0, |t| {
        t.weight_bytes
    });
    let smaller = MetricValue::exact("weight_bytes", "B", Better::Lower, 100.0, |t| {
        t.weight_bytes
    });
    let r = compare_metric(&b, &bigger, &cfg, 100, 1, None);
    assert_eq!(r.verdict, Verdict::Regressed, "{r:?}");
    assert!((r.change.unwrap() - 0.01).abs() < 1e-12);
    assert_eq!(
        compare_metric(&b, &smaller, &cfg, 100, 1, None).verdict,
        Verdict::Improved
    );
    assert_eq!(
        compare_metric(&b, &b, &cfg, 100, 1, None).verdict,
        Verdict::Unchanged
    );

    // Accuracy 91.5% -> 90.0%: a drop of 1.5 points against a 1-point threshold.
    let acc = |x| MetricValue::points("accuracy", x, |t| t.accuracy_points);
    let r = compare_metric(&acc(91.5), &acc(90.0), &cfg, 100, 1, None);
    assert_eq!(
        (r.verdict, r.kind),
        (Verdict::Regressed, ChangeKind::Points)
    );
    assert!((r.change.unwrap() + 1.5).abs() < 1e-12);
    assert_eq!(
        compare_metric(&acc(91.5), &acc(91.0), &cfg, 100, 1, None).verdict,
        Verdict::Unchanged
    );
    assert_eq!(
        compare_metric(&acc(91.5), &acc(95.0), &cfg, 100, 1, None).verdict,
        Verdict::Improved
    );

    // Energy measured by different methods is never compared.
    let e = |m: &str| MetricValue::exact("energy", "J", Better::Lower, 1.0, |t| t.energy).tagged(m);
    let r = compare_metric(&e("rapl"), &e("estimate-tdp"), &cfg, 100, 1, None);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(r.reason.contains("rapl vs estimate-tdp"), "{}", r.reason);
}

#[test]
fn the_rule_at_its_edges() {
    use Better::*;
    use ChangeKind::Relative;
    let d = |better, ci, p| decide(better, ci, p, 0.01, 0.05, Relative).0;
    assert_eq!(d(Lower, [0.051, 0.2], 0.001), Verdict::Regressed);
    assert_eq!(
        d(Lower, [0.051, 0.2], 0.02),
        Verdict::Inconclusive,
        "not significant"
    );
    assert_eq!(
        d(Lower, [0.04, 0.2], 0.001),
        Verdict::Inconclusive,
        "straddles"
    );
    assert_eq!(d(Lower, [-0.05, 0.05], 0.001), Verdict::Unchanged);
    assert_eq!(d(Lower, [-0.2, -0.06], 0.001), Verdict::Improved);
    // Higher is better: a drop is the regression.
    assert_eq!(d(Higher, [-0.2, -0.06], 0.001), Verdict::Regressed);
    assert_eq!(d(Higher, [0.06, 0.2], 0.001), Verdict::Improved);
    // A zero threshold: any exact growth regresses.
    assert_eq!(
        decide(Lower, [0.0, 0.0], 1.0, 0.01, 0.0, Relative).0,
        Verdict::Unchanged
    );
    assert_eq!(
        decide(Lower, [1e-9, 1e-9], 0.0, 0.01, 0.0, Relative).0,
        Verdict::Regressed
    );
}

/// The gate's promise on synthetic data: many same-distribution pairs never regress, and a
/// 10% slowdown always does (the evidence script checks the same on real runs).
#[test]
fn false_alarms_and_detections_on_synthetic_runs() {
    let cfg = CheckConfig::default();
    let (mut alarms, mut detections) = (0, 0);
    let trials = 40;
    for t in 0..trials {
        let base = case("a", latencies(2000, 1.0, 100 + t), CaseStatus::Ok);
        let same = case("a", latencies(2000, 1.0, 200 + t), CaseStatus::Ok);
        let slow_samples: Vec<f64> = latencies(2000, 1.0, 300 + t)
            .iter()
            .map(|x| x * 1.1)
            .collect();
        let slow = case("a", slow_samples, CaseStatus::Ok);
        alarms += (compare_case(&base, &same, &cfg, 2000, t, None, &()).verdict
            == Verdict::Regressed) as usize;
        detections += (compare_case(&base, &slow, &cfg, 2000, t, None, &()).verdict
            == Verdict::Regressed) as usize;
    }
    assert_eq!(alarms, 0);
    assert_eq!(detections, trials as usize);
}

#[test]
fn runs_without_common_cases_or_on_other_machines_are_refused() {
    let base = run(vec![case("a", latencies(100, 1.0, 1), CaseStatus::Ok)]);
    let other = run(vec![case("b", latencies(100, 1.0, 2), CaseStatus::Ok)]);
    let e = compare(&base, &other, &CheckConfig::default(), true, &()).unwrap_err();
    assert!(matches!(e, CompareError::NoCommonCases { .. }), "{e}");
    assert!(e.to_string().contains("`a`") && e.to_string().contains("`b`"));

    let mut moved = run(vec![case("a", latencies(100, 1.0, 2), CaseStatus::Ok)]);
    moved.environment.cpu_model = "Another CPU".into();
    moved.environment.git_commit = "feedbeef".into();
    moved.settings.max_noise = 0.5;
    let e = compare(&base, &moved, &CheckConfig::default(), false, &()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("cpu_model") && text.contains("Another CPU"),
        "{text}"
    );
    assert!(text.contains("settings.max_noise"), "{text}");
    assert!(
        !text.contains("git_commit"),
        "informational differences do not block: {text}"
    );
    assert!(text.contains("--allow-env-mismatch"), "{text}");

    let c = compare(&base, &moved, &CheckConfig::default(), true, &()).unwrap();
    let fields: Vec<(&str, bool)> = c
        .differences
        .iter()
        .map(|d| (d.field.as_str(), d.blocking))
        .collect();
    assert!(fields.contains(&("cpu_model", true)), "{fields:?}");
    assert!(fields.contains(&("git_commit", false)), "{fields:?}");
    assert_eq!(c.cases.len(), 1);

    // Threads in effect are compared case by case.
    let mut threads = run(vec![case("a", latencies(100, 1.0, 2), CaseStatus::Ok)]);
    threads.cases[0]
        .threads_in_effect
        .as_mut()
        .unwrap()
        .rayon_pool = 4;
    let e = compare(&base, &threads, &CheckConfig::default(), false, &()).unwrap_err();
    assert!(e.to_string().contains("threads in effect (a)"), "{e}");
}

#[test]
fn cases_are_matched_by_id_and_leftovers_listed() {
    let base = run(vec![
        case("a", latencies(100, 1.0, 1), CaseStatus::Ok),
        case("b", latencies(100, 1.0, 2), CaseStatus::Ok),
    ]);
    let cand = run(vec![
        case("c", latencies(100, 1.0, 3), CaseStatus::Ok),
        case("a", latencies(100, 1.0, 4), CaseStatus::Ok),
    ]);
    let c = compare(&base, &cand, &CheckConfig::default(), false, &()).unwrap();
    assert_eq!(
        c.cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(c.only_in_baseline, ["b"]);
    assert_eq!(c.only_in_candidate, ["c"]);
    assert!(!c.regressed());
    assert_eq!(c.case_counts().regressed, 0);
}

#[test]
fn with_processes_the_process_is_the_unit_of_the_test() {
    // Each run's samples pin its pooled median tightly, but the process medians wander by
    // about 8%: the sample-level tests would call this A/A pair a regression; the
    // process-level test must not.
    let a = [1.00, 1.10, 0.95, 1.05, 1.12, 0.97];
    let b = [1.09, 1.15, 1.02, 1.14, 1.06, 1.18];
    let pooled = one(
        case(
            "x",
            case_with_processes("x", &a, 1).latency_ms.unwrap().samples,
            CaseStatus::Ok,
        ),
        case(
            "x",
            case_with_processes("x", &b, 50).latency_ms.unwrap().samples,
            CaseStatus::Ok,
        ),
    );
    assert_eq!(verdict_of(&pooled, "latency_p50"), Verdict::Regressed);
    let cc = one(
        case_with_processes("x", &a, 1),
        case_with_processes("x", &b, 50),
    );
    let row = cc
        .metrics
        .iter()
        .find(|m| m.metric == "latency_p50")
        .unwrap();
    assert_eq!(row.method, "welch_processes");
    assert_ne!(row.verdict, Verdict::Regressed, "{row:?}");
    // A clear 30% slowdown of every process is still caught, on p50, p99 and throughput.
    let slow: Vec<f64> = a.iter().map(|x| x * 1.3).collect();
    let cc = one(
        case_with_processes("x", &a, 1),
        case_with_processes("x", &slow, 50),
    );
    for metric in ["latency_p50", "latency_p99", "throughput"] {
        assert_eq!(
            verdict_of(&cc, metric),
            Verdict::Regressed,
            "{metric}: {cc:?}"
        );
    }
    // The row's values are the geometric means of the process figures.
    let row = cc
        .metrics
        .iter()
        .find(|m| m.metric == "latency_p50")
        .unwrap();
    let gm = |xs: &[f64]| crate::stats::geometric_mean(xs);
    let want = gm(&case_with_processes("x", &a, 1)
        .processes
        .unwrap()
        .latency_p50_ms);
    assert!((row.baseline.unwrap() - want).abs() < 1e-12);
}

#[test]
fn one_process_on_a_side_is_inconclusive_not_a_crash() {
    let mut b = case_with_processes("x", &[1.0, 1.1, 1.05], 1);
    let c = case_with_processes("x", &[1.0, 1.1, 1.05], 9);
    // A baseline whose process list lost all but one entry (hand-edited file).
    if let Some(p) = b.processes.as_mut() {
        p.latency_p50_ms.truncate(1);
        p.latency_p99_ms.truncate(1);
        p.throughput_per_s.truncate(1);
    }
    let cc = one(b, c);
    assert_ne!(verdict_of(&cc, "latency_p50"), Verdict::Regressed);
}

/// `case_with_processes` with a reference-kernel time per process.
fn case_with_reference(p50s: &[f64], reference_us: &[f64], seed: u64) -> CaseResult {
    let mut c = case_with_processes("x", p50s, seed);
    if let Some(p) = c.processes.as_mut() {
        p.reference_us = reference_us.to_vec();
    }
    c
}

fn p50_row(b: &CaseResult, c: &CaseResult) -> MetricComparison {
    let floor = reference_floor_us(&run(vec![b.clone()]), &run(vec![c.clone()]));
    compare_case(b, c, &CheckConfig::default(), 2000, 7, floor, &())
        .metrics
        .into_iter()
        .find(|m| m.metric == "latency_p50")
        .unwrap()
}

#[test]
fn only_undisturbed_processes_are_compared() {
    // Baseline: four processes at full speed (reference 60 µs) and four in a slow spell
    // (reference 70-75 µs, the model 35% slower with it). Candidate: 10% slower for real,
    // with one process in a slow spell.
    let fast = [1.00, 1.01, 0.99, 1.00];
    let base_p50: Vec<f64> = fast
        .iter()
        .copied()
        .chain([1.35, 1.36, 1.34, 1.35])
        .collect();
    let base_ref = [60.0, 60.5, 60.2, 60.1, 72.0, 75.0, 70.0, 71.0];
    let cand_p50: Vec<f64> = fast.iter().map(|x| x * 1.10).chain([1.35]).collect();
    let cand_ref = [60.3, 60.0, 61.0, 60.4, 73.0];
    let b = case_with_reference(&base_p50, &base_ref, 1);
    let c = case_with_reference(&cand_p50, &cand_ref, 50);
    let row = p50_row(&b, &c);
    assert_eq!(row.method, "welch_undisturbed_processes");
    assert_eq!(row.verdict, Verdict::Regressed, "{row:?}");
    assert!(row.reason.contains("4 of 8 vs 4 of 5"), "{}", row.reason);
    let change = row.change.unwrap();
    assert!((change - 0.10).abs() < 0.02, "{change}");
    // Over all processes the slow spell hides the slowdown: the test is what changed.
    let mut b_all = b.clone();
    let mut c_all = c.clone();
    for x in [&mut b_all, &mut c_all] {
        x.processes.as_mut().unwrap().reference_us.clear();
    }
    let row = p50_row(&b_all, &c_all);
    assert_eq!(row.method, "welch_processes");
    assert_ne!(row.verdict, Verdict::Regressed, "{row:?}");
    // The same code, one side in a slow spell for most processes: not a regression.
    let b = case_with_reference(&base_p50, &base_ref, 1);
    let c = case_with_reference(&base_p50, &base_ref, 9);
    assert_ne!(p50_row(&b, &c).verdict, Verdict::Regressed);
}

/// Per-process medians of a model whose time grows as the reference time^1.5 (a host slow
/// spell hurts the model more than the plain-arithmetic reference, as measured here), times
/// `scale`, with a little process-to-process jitter.
fn slowed_with_host(reference_us: &[f64], scale: f64) -> Vec<f64> {
    let jitter = [
        1.0, 1.004, 0.996, 1.002, 0.998, 1.003, 0.997, 1.001, 0.999, 1.0,
    ];
    reference_us
        .iter()
        .zip(jitter.iter().cycle())
        .map(|(r, j)| scale * (r / 60.0).powf(1.5) * j)
        .collect()
}

#[test]
fn a_disturbed_run_is_compared_after_adjusting_for_the_reference_time() {
    // Most processes of both runs ran in a slow spell (reference 66-75 µs against a 60 µs
    // floor): too few are undisturbed, so every process is adjusted for its reference time.
    let base_ref = [60.0, 60.5, 68.0, 70.0, 72.0, 66.0, 74.0, 71.0];
    let cand_ref = [61.0, 67.0, 69.0, 73.0, 75.0, 70.0, 68.0, 72.0];
    let b = case_with_reference(&slowed_with_host(&base_ref, 1.0), &base_ref, 1);
    let c = case_with_reference(&slowed_with_host(&cand_ref, 1.10), &cand_ref, 2);
    let row = p50_row(&b, &c);
    assert_eq!(row.method, "ancova_reference", "{row:?}");
    assert_eq!(row.verdict, Verdict::Regressed, "{row:?}");
    assert!(
        row.reason
            .contains("only 2 of 8 vs 1 of 8 processes undisturbed"),
        "{}",
        row.reason
    );
    let change = row.change.unwrap();
    assert!((change - 0.10).abs() < 0.01, "{change}");
    // The same model with the candidate's processes in a slower spell than the baseline's:
    // the raw figures differ by almost the threshold (4%), the adjusted ones do not.
    let c = case_with_reference(&slowed_with_host(&cand_ref, 1.0), &cand_ref, 3);
    let row = p50_row(&b, &c);
    assert_eq!(row.method, "ancova_reference");
    assert_eq!(row.verdict, Verdict::Unchanged, "{row:?}");
    assert!(
        row.candidate.unwrap() / row.baseline.unwrap() > 1.03,
        "{row:?}"
    );
}

#[test]
fn too_few_undisturbed_processes_to_adjust_are_inconclusive_with_the_reason() {
    let b = case_with_reference(&[1.0, 1.01, 0.99, 1.0], &[60.0, 60.1, 60.2, 60.0], 1);
    // Two candidate processes, neither near the floor (60 µs within 3%): nothing to select
    // and too few to fit a slope on.
    let c = case_with_reference(&[1.3, 1.31], &[70.0, 71.0], 2);
    let row = p50_row(&b, &c);
    assert_eq!(row.verdict, Verdict::Inconclusive);
    assert!(
        row.reason
            .contains("only 4 of 4 baseline and 0 of 2 candidate"),
        "{}",
        row.reason
    );
}

#[test]
fn the_reference_floor_is_the_fastest_of_both_runs() {
    let b = case_with_reference(&[1.0, 1.0], &[61.0, 62.0], 1);
    let c = case_with_reference(&[1.0, 1.0], &[60.0, 70.0], 2);
    assert_eq!(
        reference_floor_us(&run(vec![b.clone()]), &run(vec![c])),
        Some(60.0)
    );
    let mut old = b.clone();
    old.processes.as_mut().unwrap().reference_us.clear();
    assert_eq!(reference_floor_us(&run(vec![b]), &run(vec![old])), None);
}

/// `case_with_reference` with each process's run-queue share as well.
fn case_with_sched(p50s: &[f64], reference_us: &[f64], run_queue: &[f64], seed: u64) -> CaseResult {
    let mut c = case_with_reference(p50s, reference_us, seed);
    if let Some(p) = c.processes.as_mut() {
        p.run_queue_share = run_queue.to_vec();
    }
    c
}

#[test]
fn a_process_held_off_its_cpu_is_not_undisturbed_whatever_its_reference() {
    // Baseline: eight quiet processes. Candidate: the same code, but a compiler beside it
    // preempted four processes between their reference readings: the reference looks
    // undisturbed, the figures are 30% worse, and the run-queue share says why.
    let quiet = [1.00, 1.01, 0.99, 1.00, 1.005, 0.995, 1.0, 1.01];
    let refs = [60.0, 60.2, 60.1, 60.3, 60.0, 60.4, 60.1, 60.2];
    let b = case_with_sched(&quiet, &refs, &[0.002; 8], 1);
    let mut cand = quiet;
    for x in &mut cand[..4] {
        *x *= 1.3;
    }
    let shares = [0.35, 0.4, 0.3, 0.45, 0.003, 0.001, 0.004, 0.002];
    let c = case_with_sched(&cand, &refs, &shares, 2);
    let row = p50_row(&b, &c);
    assert_eq!(row.method, "welch_undisturbed_processes");
    assert_eq!(row.verdict, Verdict::Unchanged, "{row:?}");
    assert!(row.reason.contains("8 of 8 vs 4 of 8"), "{}", row.reason);
    // With the reference alone, the preempted processes count: a 12% drop in throughput
    // that cannot be told from noise. The run-queue share is what set them aside.
    let blind = CheckConfig {
        max_run_queue_share: 1.0,
        ..CheckConfig::default()
    };
    let floor = reference_floor_us(&run(vec![b.clone()]), &run(vec![c.clone()]));
    let cc = compare_case(&b, &c, &blind, 2000, 7, floor, &());
    let tp = cc
        .metrics
        .iter()
        .find(|m| m.metric == "throughput")
        .unwrap();
    assert_eq!(tp.verdict, Verdict::Inconclusive, "{tp:?}");
    assert!(tp.change.unwrap() < -0.10, "{tp:?}");
    assert!(tp.reason.contains("8 of 8 vs 8 of 8"), "{}", tp.reason);
}

#[test]
fn too_few_processes_not_held_off_their_cpu_means_measure_again() {
    let quiet = [1.00, 1.01, 0.99, 1.00, 1.005, 0.995];
    let refs = [60.0, 60.2, 60.1, 60.3, 60.0, 60.4];
    let b = case_with_sched(&quiet, &refs, &[0.001; 6], 1);
    // Every candidate process but one was preempted for a third of its window.
    let c = case_with_sched(
        &[1.3, 1.4, 1.35, 1.0, 1.3, 1.32],
        &refs,
        &[0.3, 0.35, 0.33, 0.01, 0.3, 0.31],
        2,
    );
    let row = p50_row(&b, &c);
    assert_eq!(row.verdict, Verdict::Inconclusive, "{row:?}");
    assert!(row.measure_again, "{row:?}");
    assert!(
        row.reason
            .contains("held off their CPU by other work for at most 2%")
            && row.reason.contains("(0 and 5 were held off longer)")
            && row.reason.contains("measure again"),
        "{}",
        row.reason
    );
    // A side of two processes can never have three undisturbed: that is not for measuring
    // again but for more processes.
    let two = case_with_sched(&[1.3, 1.4], &refs[..2], &[0.3, 0.35], 3);
    let row = p50_row(&b, &two);
    assert_eq!(row.verdict, Verdict::Inconclusive);
    assert!(!row.measure_again, "{row:?}");
    assert!(row
        .reason
        .ends_with("re-run on a quieter machine or with more processes"));
}

#[test]
fn the_reference_adjustment_leaves_out_processes_held_off_their_cpu() {
    // Both runs in a slow spell (reference 66-75 µs against a 60 µs floor), the candidate
    // 10% slower for real; two candidate processes were also preempted (30% worse).
    let base_ref = [60.0, 60.5, 68.0, 70.0, 72.0, 66.0, 74.0, 71.0];
    let cand_ref = [61.0, 67.0, 69.0, 73.0, 75.0, 70.0, 68.0, 72.0];
    let b = case_with_sched(&slowed_with_host(&base_ref, 1.0), &base_ref, &[0.001; 8], 1);
    let mut cand = slowed_with_host(&cand_ref, 1.10);
    cand[2] *= 1.3;
    cand[5] *= 1.3;
    let shares = [0.001, 0.002, 0.3, 0.001, 0.0, 0.25, 0.001, 0.002];
    let c = case_with_sched(&cand, &cand_ref, &shares, 2);
    let row = p50_row(&b, &c);
    assert_eq!(row.method, "ancova_reference", "{row:?}");
    assert_eq!(row.verdict, Verdict::Regressed, "{row:?}");
    assert!(
        row.reason
            .contains("the 8 vs 6 not held off their CPU by other work compared"),
        "{}",
        row.reason
    );
    let change = row.change.unwrap();
    assert!((change - 0.10).abs() < 0.01, "{change}");
}

#[test]
fn a_regression_wins_over_measure_again_which_wins_over_passing() {
    let refs = [60.0, 60.2, 60.1, 60.3];
    let quiet = case_with_sched(&[1.0, 1.01, 0.99, 1.0], &refs, &[0.001; 4], 1);
    let busy = case_with_sched(&[1.3, 1.4, 1.35, 1.3], &refs, &[0.3; 4], 2);
    let mut slow = case_with_sched(&[1.2, 1.21, 1.19, 1.2], &refs, &[0.001; 4], 3);
    slow.id = "y".into();
    let mut quiet_y = quiet.clone();
    quiet_y.id = "y".into();
    let check = |b: Vec<CaseResult>, c: Vec<CaseResult>| {
        compare(&run(b), &run(c), &CheckConfig::default(), false, &())
            .unwrap()
            .outcome()
    };
    assert_eq!(
        check(vec![quiet.clone()], vec![quiet.clone()]),
        Outcome::Passed
    );
    let again = compare(
        &run(vec![quiet.clone()]),
        &run(vec![busy.clone()]),
        &CheckConfig::default(),
        false,
        &(),
    )
    .unwrap();
    assert_eq!(again.outcome(), Outcome::MeasureAgain);
    assert_eq!(again.measure_again().count(), 1);
    assert!(!again.regressed());
    let text = render::terminal(&again);
    assert!(
        text.contains("measure again: 1 case had too few undisturbed processes (x)"),
        "{text}"
    );
    assert!(render::markdown(&again).contains("## inferbench check: measure again"));
    assert_eq!(
        check(vec![quiet.clone(), quiet_y], vec![busy, slow]),
        Outcome::Regressed
    );
}

#[test]
fn wrap_breaks_at_spaces_and_cuts_only_words_longer_than_a_line() {
    let w = render::wrap("aaa bbb ccc", 7, 2);
    assert_eq!(w, "aaa bbb\n  ccc");
    let path = format!("/{}", "x".repeat(25));
    let w = render::wrap(&format!("label: {path} (suite s)"), 10, 2);
    assert!(w.lines().all(|l| l.chars().count() <= 10), "{w}");
    // Nothing dropped: the text comes back with the breaks and indents removed.
    let joined: String = w.split('\n').map(|l| l.trim_start()).collect();
    assert_eq!(joined.replace(' ', ""), format!("label:{path}(suites)"));
    assert_eq!(render::wrap("short", 120, 2), "short");
    // Width counts characters, not bytes.
    assert_eq!(render::wrap("µµµ µµµ", 7, 0), "µµµ µµµ");
}

#[test]
fn wrap_keeps_leading_spaces_and_indents_continuations_exactly() {
    assert_eq!(render::wrap("  aaa bbb", 7, 4), "  aaa\n    bbb");
    let w = render::wrap(&"x".repeat(12), 5, 1);
    assert_eq!(w, "xxxxx\n xxxx\n xxx");
}
