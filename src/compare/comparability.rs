//! Whether two runs are comparable: suite file, settings, environment.

use crate::schema::{CaseResult, EnvDifference, RunResult};

/// Differences between the runs themselves: suite file, settings, `--quick` (blocking), then
/// the environment (`Environment::differences`), then notes (filter, thresholds, test-only
/// slowdown), informational.
pub fn run_differences(baseline: &RunResult, candidate: &RunResult) -> Vec<EnvDifference> {
    let diff = |field: &str, b: String, c: String, blocking: bool| EnvDifference {
        field: field.to_string(),
        baseline: b,
        candidate: c,
        blocking,
    };
    let mut out = Vec::new();
    if baseline.suite.sha256 != candidate.suite.sha256 {
        let label = |r: &RunResult| {
            format!(
                "{} ({}, sha256 {})",
                r.suite.name,
                r.suite.file.display(),
                &r.suite.sha256[..r.suite.sha256.len().min(12)]
            )
        };
        out.push(diff("suite", label(baseline), label(candidate), true));
    }
    if baseline.quick != candidate.quick {
        out.push(diff(
            "quick",
            baseline.quick.to_string(),
            candidate.quick.to_string(),
            true,
        ));
    }
    let (bs, cs) = (
        serde_json::to_value(&baseline.settings).unwrap_or_default(),
        serde_json::to_value(&candidate.settings).unwrap_or_default(),
    );
    if let (Some(bs), Some(cs)) = (bs.as_object(), cs.as_object()) {
        for (key, b) in bs {
            let c = cs.get(key).cloned().unwrap_or_default();
            if *b != c {
                out.push(diff(
                    &format!("settings.{key}"),
                    b.to_string(),
                    c.to_string(),
                    true,
                ));
            }
        }
    }
    out.extend(baseline.environment.differences(&candidate.environment));
    if baseline.filter != candidate.filter {
        let f = |r: &RunResult| r.filter.clone().unwrap_or_else(|| "(none)".into());
        out.push(diff("filter", f(baseline), f(candidate), false));
    }
    if baseline.check != candidate.check {
        out.push(diff(
            "check",
            "(other thresholds)".into(),
            "(used, after --threshold)".into(),
            false,
        ));
    }
    if baseline.injected_slowdown != candidate.injected_slowdown {
        let f = |r: &RunResult| {
            r.injected_slowdown
                .map(|x| format!("{:+.1}% (test only)", 100.0 * x))
                .unwrap_or_else(|| "none".into())
        };
        out.push(diff("injected_slowdown", f(baseline), f(candidate), false));
    }
    out.sort_by_key(|d| !d.blocking);
    out
}

/// Matched cases (baseline, candidate) that ran with different threads in effect (rayon's
/// pool, candle's): blocking, like a settings difference.
pub fn thread_differences(pairs: &[(&CaseResult, &CaseResult)]) -> Vec<EnvDifference> {
    let mut out = Vec::new();
    for (b, c) in pairs {
        if let (Some(bt), Some(ct)) = (&b.threads_in_effect, &c.threads_in_effect) {
            if (bt.rayon_pool, bt.candle) != (ct.rayon_pool, ct.candle) {
                let f = |t: &crate::schema::ThreadsInEffect| {
                    format!("rayon {} / candle {}", t.rayon_pool, t.candle)
                };
                out.push(EnvDifference {
                    field: format!("threads in effect ({})", c.id),
                    baseline: f(bt),
                    candidate: f(ct),
                    blocking: true,
                });
            }
        }
    }
    out
}
