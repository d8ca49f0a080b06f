//! Shared by the report tests: the fixed run file, and a richer report built from it with
//! hand-made quality figures and derived variants, so that every chart is drawn.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use inferbench::probe::energy::EnergyMethod;
use inferbench::report::{self, CaseView, QualityView, ReportData};
use inferbench::results::LatencyMs;

pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/report.json")
}

/// The fixed run file as a report, labelled by its path relative to the repository.
pub fn plain() -> ReportData {
    let mut d = report::load(&[fixture()]).expect("the fixture is a valid run file");
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
    d
}
