//! Shared by the report tests: the fixed run file, and a richer report built from it with
//! hand-made quality figures and derived variants, so that every chart is drawn.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use inferbench::report::{CaseView, QualityView, ReportData};
use inferbench::results;
use inferbench::schema::{EnergyMethod, LatencyMs};

pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/report.json")
}

/// The fixed run file as a report, labelled by its path relative to the repository.
pub fn plain() -> ReportData {
    let runs = results::read_runs(&[fixture()]).expect("the fixture is a valid run file");
    let mut d = ReportData::from_runs(runs);
    d.runs[0].source = "tests/fixtures/runs/report.json".into();
    d
}

/// A 10-class confusion matrix with `errors` misclassified samples spread over a few cells.
pub fn confusion(per_class: u64, errors: u64) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; 10]; 10];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = per_class;
    }
    for k in 0..errors as usize {
        let i = (k * 7) % 10;
        let j = (i + 1 + k % 3) % 10;
        m[i][i] -= 1;
        m[i][j] += 1;
    }
    m
}

fn quality(
    accuracy: f64,
    errors: u64,
    params: u64,
    nonzero: Option<u64>,
    rate: f64,
) -> QualityView {
    QualityView {
        dataset: Some("digits: test split, 360 samples".into()),
        accuracy: Some(accuracy),
        f1_macro: Some(accuracy - 0.002),
        top1_agreement: Some(1.0 - (errors as f64) / 400.0),
        mean_cosine: Some(0.999),
        fidelity_reference: Some("baseline".into()),
        confusion: Some(confusion(36, errors)),
        params_nonzero: Some(nonzero.unwrap_or(params)),
        compression_rate: Some(rate),
    }
}

fn scale_latency(l: &mut LatencyMs, f: f64) {
    for x in &mut l.samples {
        *x *= f;
    }
    let s = &mut l.summary;
    for v in [
        &mut s.mean,
        &mut s.stdev,
        &mut s.min,
        &mut s.p50,
        &mut s.p90,
        &mut s.p95,
        &mut s.p99,
        &mut s.p999,
        &mut s.max,
    ] {
        *v *= f;
    }
    for ci in [&mut s.p50_ci, &mut s.p99_ci] {
        ci[0] *= f;
        ci[1] *= f;
    }
}

/// A variant derived from `model`'s baseline cases: latency and energy scaled by `speed`,
/// weights divided by `shrink`.
fn derive(
    d: &ReportData,
    model: &str,
    name: &str,
    speed: f64,
    shrink: f64,
    q: QualityView,
) -> Vec<CaseView> {
    d.cases
        .iter()
        .filter(|c| c.case.model_name == model && c.case.variant == "baseline")
        .map(|c| {
            let mut c = c.clone();
            c.case.variant = name.into();
            c.case.id = c.case.id.replacen("-baseline/", &format!("-{name}/"), 1);
            if let Some(l) = c.case.latency_ms.as_mut() {
                scale_latency(l, speed);
            }
            c.case.throughput_per_s = c.case.throughput_per_s.map(|t| t / speed);
            if let Some(e) = c.case.energy.as_mut() {
                e.joules *= speed;
                e.joules_per_inference *= speed;
                e.inferences_per_joule /= speed;
            }
            c.case.model.weight_bytes = (c.case.model.weight_bytes as f64 / shrink) as usize;
            c.quality = q.clone();
            c
        })
        .collect()
}

/// The fixture with quality figures on every variant, two derived CNN variants (int8-like:
/// faster, 4x smaller, a little less accurate; 50%-pruned: same size, fewer non-zero
/// weights) and the MLP's energy marked as measured by RAPL, so every chart has data.
pub fn with_quality() -> ReportData {
    let mut d = plain();
    let cnn_params = d.cases[0].case.model.params as u64;
    for c in &mut d.cases {
        let params = c.case.model.params as u64;
        c.quality = if c.case.model_name == "cnn" {
            quality(0.981, 7, params, None, 1.0)
        } else {
            quality(0.953, 17, params, None, 1.0)
        };
        if c.case.model_name == "mlp" {
            if let Some(e) = c.case.energy.as_mut() {
                e.method = EnergyMethod::Rapl;
                e.estimate = None;
                e.note = None;
                e.domains = vec!["package-0".into()];
            }
        }
    }
    let int8 = derive(
        &d,
        "cnn",
        "int8",
        0.55,
        4.0,
        quality(0.974, 9, cnn_params, None, 4.0),
    );
    let pruned = derive(
        &d,
        "cnn",
        "pruned50",
        0.97,
        1.0,
        quality(0.962, 14, cnn_params, Some(cnn_params / 2), 1.0),
    );
    d.cases.extend(int8);
    d.cases.extend(pruned);
    with_roofline_and_profile(&mut d);
    d
}

/// Hand-made peaks on the run, every measured CPU case placed on its roofline (traffic from
/// the weights and a made-up activation volume), and a per-layer profile on the first case.
pub fn with_roofline_and_profile(d: &mut ReportData) {
    use inferbench::model::cnn::Cnn;
    use inferbench::model::{ModelKind, Padding};
    use inferbench::profile::{self, RawProfile};
    use inferbench::roofline::{self};
    use inferbench::schema::{PeakAt, Peaks};
    let at = |threads: usize, gbs: f64, gflops: f64| PeakAt {
        threads,
        measured_at: d.runs[0].run.started_at,
        bandwidth_gbs: gbs,
        bandwidth_runs_gbs: vec![gbs * 0.97, gbs],
        copy_bytes: 256 << 20,
        matmul_gflops: gflops,
        matmul_runs_gflops: vec![gflops, gflops * 0.98],
        matmul_n: 2048,
        repeats: 2,
    };
    let peaks = Peaks {
        fingerprint: "0123456789abcdef".into(),
        cpu_model: d.runs[0].run.environment.cpu_model.clone(),
        by_threads: vec![at(1, 12.0, 60.0), at(2, 18.0, 115.0)],
    };
    for c in &mut d.cases {
        if !c.measured() || c.case.device != "cpu" {
            continue;
        }
        let bytes = c.case.model.weight_bytes as u64 + 20_000 * c.case.batch_size as u64;
        c.case.bytes_per_batch = Some(bytes);
        c.case.roofline = roofline::for_case(&c.case, &peaks).ok();
    }
    d.runs[0].run.peaks = Some(peaks);
    let arch = Cnn {
        input_hwc: [28, 28, 1],
        conv_channels: vec![32, 64],
        pool_after: vec![true, true],
        kernel: 3,
        padding: Padding::Valid,
        pool: 2,
        dense: vec![64],
        classes: 10,
    };
    let layers = arch.layers();
    let ms = [0.08, 0.02, 0.25, 0.01, 0.03, 0.002];
    let raw = RawProfile {
        weight_bytes: layers.iter().map(|l| l.params * 4).collect(),
        traffic_bytes: layers
            .iter()
            .map(|l| (l.params * 4 + 4000) as u64)
            .collect(),
        samples_ms: ms.iter().map(|m| vec![m * 0.98, *m, m * 1.02]).collect(),
        warmup_iterations: 50,
        stop_reason: inferbench::schema::StopReason::Converged,
        noise: 0.01,
        trace_ns: vec![vec![[0, 80_000], [80_000, 20_000]]],
        forward_after_ms: Vec::new(),
        layers,
    };
    let first = &mut d.cases[0];
    let samples = first
        .case
        .latency_ms
        .as_ref()
        .map(|l| l.samples.clone())
        .unwrap_or_default();
    first.case.profile = Some(profile::summarize(raw, 1, &samples));
}

/// The fixture with `n` derived CNN variants beside its baselines, each a little faster or
/// smaller than the one before and some less accurate, so that a few lie on the Pareto front
/// and most do not: a report with more variants than any palette has colours.
pub fn many_variants(n: usize) -> ReportData {
    let mut d = plain();
    let cnn_params = d.cases[0].case.model.params as u64;
    for c in &mut d.cases {
        let params = c.case.model.params as u64;
        c.quality = if c.case.model_name == "cnn" {
            quality(0.981, 7, params, None, 1.0)
        } else {
            quality(0.953, 17, params, None, 1.0)
        };
    }
    for i in 0..n {
        let speed = 0.95 - 0.05 * i as f64;
        // Every third variant is on the front; the others lose accuracy for nothing.
        let accuracy = if i % 3 == 0 {
            0.978 - 0.002 * i as f64
        } else {
            0.93 - 0.002 * i as f64
        };
        let v = derive(
            &d,
            "cnn",
            &format!("v{i:02}"),
            speed,
            1.0 + i as f64 * 0.25,
            quality(accuracy, 8 + i as u64, cnn_params, None, 1.0),
        );
        d.cases.extend(v);
    }
    d
}
