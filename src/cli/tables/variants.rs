//! The variant tables of the run summary: how each variant was made and what it scores
//! (classifiers), how close its embeddings stay (sentence encoders), and how close its outputs
//! stay on synthetic inputs (models no data scores).

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::fmt_bytes;
use crate::schema::RunResult;

/// One row per variant: how it was made, its size, and its quality on the test split.
pub fn variants_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "recipe",
        "dtype",
        "params (non-zero)",
        "weights",
        "file (gzip)",
        "x base",
        "MFLOP/sample",
        "acc",
        "F1 macro",
        "agree",
        "cache",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for c in &run.cases {
        if !seen.insert((c.model_name.clone(), c.variant.clone())) {
            continue;
        }
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let m = &c.model;
        let q = c.quality.as_ref();
        let dash = || "-".to_string();
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(m.recipe.clone().unwrap_or_else(dash)),
            Cell::new(m.dtype.clone().unwrap_or_else(dash)),
            right(match m.params_nonzero {
                Some(nz) if nz != m.params => format!("{} ({nz})", m.params),
                _ => m.params.to_string(),
            }),
            right(if m.weight_bytes > 0 {
                fmt_bytes(m.weight_bytes as u64)
            } else {
                dash()
            }),
            right(match (m.artifact_bytes, m.artifact_gzip_bytes) {
                (Some(a), Some(g)) => format!("{} ({})", fmt_bytes(a), fmt_bytes(g)),
                (Some(a), None) => fmt_bytes(a),
                _ => dash(),
            }),
            right(
                m.compression_rate
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(dash),
            ),
            right(format!("{:.2}", m.flops_per_sample as f64 / 1e6)),
            right(q.map(|q| format!("{:.4}", q.accuracy)).unwrap_or_else(dash)),
            right(q.map(|q| format!("{:.4}", q.f1_macro)).unwrap_or_else(dash)),
            right(
                q.and_then(|q| q.fidelity.as_ref())
                    .map(|f| format!("{:.4}", f.top1_agreement))
                    .unwrap_or_else(dash),
            ),
            Cell::new(match &m.artifact {
                Some(a) if a.cache_hit => "hit".to_string(),
                Some(_) => "built".to_string(),
                None => dash(),
            }),
        ]);
    }
    table
}

/// One row per sentence-encoder variant: fidelity of its embeddings to the baseline's and
/// the correlation of pair similarities with their labels.
pub fn embeddings_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant", "embedded", "vs", "mean cos", "min cos", "pairs", "Spearman", "Pearson",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for c in &run.cases {
        let Some(e) = &c.embedding else { continue };
        if !seen.insert((c.model_name.clone(), c.variant.clone())) {
            continue;
        }
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let opt = |x: Option<f64>| x.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(&e.dataset),
            Cell::new(&e.reference),
            right(format!("{:.6}", e.mean_cosine)),
            right(format!("{:.6}", e.min_cosine)),
            right(e.pairs.map(|p| p.to_string()).unwrap_or_else(|| "-".into())),
            right(opt(e.spearman)),
            right(opt(e.pearson)),
        ]);
    }
    table
}

/// One row per variant compared with its baseline on synthetic inputs (a model no data
/// scores): top-1 agreement where the output holds class scores, cosines, largest difference.
pub fn output_fidelity_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "output",
        "vs",
        "samples",
        "top-1",
        "mean cos",
        "min cos",
        "max |diff|",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for c in &run.cases {
        let Some(f) = &c.output_fidelity else {
            continue;
        };
        if !seen.insert((c.model_name.clone(), c.variant.clone())) {
            continue;
        }
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(format!("{} ({} values)", f.output, f.width)),
            Cell::new(&f.reference),
            right(f.samples.to_string()),
            right(
                f.top1_agreement
                    .map(|x| format!("{x:.4}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(format!("{:.6}", f.mean_cosine)),
            right(format!("{:.6}", f.min_cosine)),
            right(format!("{:.3e}", f.max_abs_diff)),
        ]);
    }
    table
}
