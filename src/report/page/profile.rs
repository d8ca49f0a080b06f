//! The page's roofline table, measured peaks, and per-layer profiles.

use serde::Serialize;

use super::super::data::ReportData;
use super::super::format;
use super::dash;

#[derive(Debug, Serialize)]
pub(super) struct RoofRow {
    run: String,
    id: String,
    intensity: String,
    gflops: String,
    gbs: String,
    roof: String,
    bound: &'static str,
    efficiency: String,
}

#[derive(Debug, Serialize)]
pub(super) struct ProfileCtx {
    run: String,
    id: String,
    summary: String,
    layers: Vec<ProfileRow>,
}

#[derive(Debug, Serialize)]
pub(super) struct ProfileRow {
    name: String,
    kind: String,
    shape: String,
    mflop: String,
    bytes: String,
    mean: String,
    p50: String,
    share: String,
    gflops: String,
}

/// The roofline table: each case placed against the machine's measured peaks.
pub(super) fn roofline_rows(d: &ReportData) -> Vec<RoofRow> {
    d.cases
        .iter()
        .filter_map(|c| {
            let r = c.case.roofline.as_ref()?;
            Some(RoofRow {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                intensity: format!("{:.2}", r.arithmetic_intensity),
                gflops: format!("{:.2}", r.achieved_gflops),
                gbs: format!("{:.2}", r.achieved_gbs),
                roof: format!("{:.2}", r.roof_gflops),
                bound: r.bound.as_str(),
                efficiency: format!("{:.1}%", r.efficiency * 100.0),
            })
        })
        .collect()
}

/// The peaks each run was placed against, as one line.
pub(super) fn peaks_note(d: &ReportData) -> Option<String> {
    let notes = d
        .runs
        .iter()
        .filter_map(|r| {
            let p = r.run.peaks.as_ref()?;
            let each: Vec<String> = p
                .by_threads
                .iter()
                .map(|q| {
                    format!(
                        "{} thread(s): copy {:.2} GB/s, f32 matmul {:.2} GFLOP/s (n = {}, best of {}, {})",
                        q.threads,
                        q.bandwidth_gbs,
                        q.matmul_gflops,
                        q.matmul_n,
                        q.repeats,
                        q.measured_at.format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .collect();
            let run = if d.several_runs() {
                format!("run {}: ", r.label)
            } else {
                String::new()
            };
            Some(format!("{run}measured peaks: {}", each.join("; ")))
        })
        .collect::<Vec<_>>();
    (!notes.is_empty()).then(|| notes.join(". "))
}

/// One per-layer profile table per profiled case.
pub(super) fn profile_sections(d: &ReportData) -> Vec<ProfileCtx> {
    d.cases
        .iter()
        .filter_map(|c| {
            let p = c.case.profile.as_ref()?;
            Some(ProfileCtx {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                summary: format!(
                    "batch {}, {} profiled iterations; sum of layer means {} ms against the unprofiled forward mean {} ms: {:+.4} ms ({:+.1}%)",
                    p.batch_size,
                    p.iterations,
                    format::ms(p.layer_sum_mean_ms),
                    format::ms(p.forward_mean_ms),
                    p.difference_ms,
                    p.difference_share * 100.0
                ),
                layers: p
                    .layers
                    .iter()
                    .map(|l| ProfileRow {
                        name: l.name.clone(),
                        kind: l.op_text().to_string(),
                        shape: crate::schema::shape_text(&l.output_shape),
                        mflop: format!("{:.3}", l.flops as f64 / 1e6),
                        bytes: format::bytes(l.bytes as f64),
                        mean: format::ms(l.mean_ms),
                        p50: format::ms(l.p50_ms),
                        share: format!("{:.1}%", l.share * 100.0),
                        gflops: if l.flops > 0 {
                            format!("{:.2}", l.gflops)
                        } else {
                            dash()
                        },
                    })
                    .collect(),
            })
        })
        .collect()
}
