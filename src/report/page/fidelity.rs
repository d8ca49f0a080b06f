//! The page's fidelity table: each variant's outputs against its baseline's on the same
//! seeded synthetic inputs (models no data scores, such as an ONNX graph that is not a
//! classifier), once per variant.

use std::collections::BTreeSet;

use serde::Serialize;

use super::super::data::ReportData;
use super::dash;

#[derive(Debug, Serialize)]
pub(super) struct FidelityRow {
    run: String,
    variant: String,
    output: String,
    reference: String,
    inputs: String,
    top1: String,
    mean_cosine: String,
    min_cosine: String,
    max_abs_diff: String,
}

/// One row per run and variant whose cases carry an output fidelity.
pub(super) fn fidelity_rows(d: &ReportData) -> Vec<FidelityRow> {
    let mut seen = BTreeSet::new();
    d.cases
        .iter()
        .filter_map(|c| {
            let f = c.case.output_fidelity.as_ref()?;
            if !seen.insert((c.run, c.variant())) {
                return None;
            }
            Some(FidelityRow {
                run: d.runs[c.run].label.clone(),
                variant: c.variant(),
                output: format!("{} ({} values)", f.output, f.width),
                reference: f.reference.clone(),
                inputs: f.inputs.clone(),
                top1: f
                    .top1_agreement
                    .map(|x| format!("{:.1}%", 100.0 * x))
                    .unwrap_or_else(dash),
                mean_cosine: format!("{:.6}", f.mean_cosine),
                min_cosine: format!("{:.6}", f.min_cosine),
                max_abs_diff: format!("{:.3e}", f.max_abs_diff),
            })
        })
        .collect()
}
