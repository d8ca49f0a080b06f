//! Under a time budget (`--quick`): a case whose single forward pass would outlast the whole
//! budget is not run. Its cold start alone (one pass, which nothing can interrupt) would
//! take that long: bf16 BERT at batch 32 needs about 30 s per pass on one core, so a quick
//! run of a suite with such cases took minutes per case. The pass is estimated from a case
//! already measured in this run: same model, variant, target and scenario, a smaller batch,
//! its median latency scaled by the batch ratio. The case is `partial` (stop reason
//! `budget`) with the estimate and its basis in its `error`, and no figures.

use crate::plan::Case;
use crate::schema::{CaseResult, Scenario};

/// Median latencies, s, of the cases measured so far, by case index.
#[derive(Debug, Default)]
pub struct PassEstimates {
    measured: Vec<(usize, f64)>,
}

impl PassEstimates {
    /// Keeps `result`'s median latency, when it has one, for the cases after it.
    pub fn record(&mut self, index: usize, result: &CaseResult) {
        if let Some(l) = &result.latency_ms {
            self.measured.push((index, l.summary.p50 / 1e3));
        }
    }

    /// Why `cases[index]` is not run: its estimated pass exceeds its budget. `None` without
    /// a budget, for scenarios other than single-stream and offline (whose iteration is one
    /// pass of the batch), and without a measured smaller batch to estimate from.
    pub fn over_budget(&self, cases: &[Case], index: usize) -> Option<String> {
        let case = &cases[index];
        let budget_s = case.settings.budget_s?;
        let kind = case.scenario.kind();
        if !matches!(kind, Scenario::SingleStream | Scenario::Offline) {
            return None;
        }
        // The largest smaller batch measured: the closest to this one.
        let (basis, p50_s) = self
            .measured
            .iter()
            .map(|&(i, p50)| (&cases[i], p50))
            .filter(|(c, _)| {
                c.model == case.model
                    && c.variant == case.variant
                    && c.target == case.target
                    && c.scenario.kind() == kind
                    && c.batch_size < case.batch_size
            })
            .max_by_key(|(c, _)| c.batch_size)?;
        let estimate_s = p50_s * case.batch_size as f64 / basis.batch_size as f64;
        (estimate_s > budget_s).then(|| {
            format!(
                "not run: one pass at batch {} is estimated at {estimate_s:.1} s (the median {:.3} s of {} times {}), over the time budget of {budget_s} s per process (--quick)",
                case.batch_size,
                p50_s,
                basis.id,
                fmt_ratio(case.batch_size as f64 / basis.batch_size as f64)
            )
        })
    }
}

fn fmt_ratio(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
