//! The terminal tables: run summary, server, cold start, variants, embeddings, peaks,
//! per-layer profile.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};

use crate::schema::{fmt_rate, CaseResult, CaseStatus, LayerProfile, Peaks, RunResult};

mod variants;
pub use variants::{embeddings_table, output_fidelity_table, variants_table};

/// The run summary fits a terminal this wide.
pub const TERMINAL_COLUMNS: u16 = 120;

/// `table` as text within `TERMINAL_COLUMNS`: whole when it fits; else its columns go into
/// several tables, each led by the first column (the row's name), and a column too wide even
/// for that wraps its cells.
pub fn fit(table: &Table) -> String {
    let widths = table.column_max_content_widths();
    // A column takes its content, a space either side and its right border.
    let span = |cols: &[usize]| {
        1 + cols
            .iter()
            .map(|&i| usize::from(widths[i]) + 3)
            .sum::<usize>()
    };
    let limit = usize::from(TERMINAL_COLUMNS);
    if widths.is_empty() || span(&(0..widths.len()).collect::<Vec<_>>()) <= limit {
        return table.to_string();
    }
    let mut groups: Vec<Vec<usize>> = vec![vec![0]];
    for i in 1..widths.len() {
        let last = groups.last_mut().expect("one group at least");
        let mut with = last.clone();
        with.push(i);
        if span(&with) <= limit || last.len() == 1 {
            last.push(i);
        } else {
            groups.push(vec![0, i]);
        }
    }
    let pick = |row: &comfy_table::Row, cols: &[usize]| -> Vec<Cell> {
        let cells: Vec<&Cell> = row.cell_iter().collect();
        cols.iter()
            .map(|&i| cells.get(i).map_or_else(|| Cell::new(""), |c| (*c).clone()))
            .collect()
    };
    let parts: Vec<String> = groups
        .iter()
        .map(|cols| {
            let mut part = Table::new();
            part.load_preset(UTF8_FULL_CONDENSED);
            if let Some(h) = table.header() {
                part.set_header(pick(h, cols));
            }
            for row in table.row_iter() {
                part.add_row(pick(row, cols));
            }
            if span(cols) > limit {
                part.set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(TERMINAL_COLUMNS);
            }
            part.to_string()
        })
        .collect();
    parts.join("\n")
}

/// Milliseconds with enough digits to compare, whatever the magnitude.
pub fn fmt_ms(x: f64) -> String {
    match x {
        x if x >= 100.0 => format!("{x:.1}"),
        x if x >= 1.0 => format!("{x:.3}"),
        x => format!("{x:.4}"),
    }
}

/// A note under the tables, broken at spaces into lines of at most `TERMINAL_COLUMNS`
/// (a word longer than that stays whole); continuation lines are indented by two.
fn wrapped(note: &str) -> String {
    let width = usize::from(TERMINAL_COLUMNS);
    let mut out = String::new();
    let mut line_len = 0;
    for word in note.split(' ') {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push_str("\n  ");
            line_len = 2;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

/// Everything `run` prints after a run: the tables (each within `TERMINAL_COLUMNS`), their
/// notes, and how many cases failed, were noisy or were cut short.
pub fn run_summary(run: &RunResult) -> String {
    let mut out = Vec::new();
    // The per-variant table, when there is more to say than the baselines' sizes.
    if run
        .cases
        .iter()
        .any(|c| c.quality.is_some() || c.model.recipe.as_deref().is_some_and(|r| r != "baseline"))
    {
        out.push(fit(&variants_table(run)));
    }
    if run.cases.iter().any(|c| c.embedding.is_some()) {
        out.push(fit(&embeddings_table(run)));
    }
    if run.cases.iter().any(|c| c.output_fidelity.is_some()) {
        out.push(fit(&output_fidelity_table(run)));
        out.push(wrapped("fidelity: each variant's output against its baseline's on the same seeded synthetic inputs"));
    }
    out.push(fit(&summary_table(run)));
    out.push(fit(&resources_table(run)));
    if let Some(table) = server_table(run) {
        out.push(fit(&table));
        out.push(wrapped("server: latency = completion - Poisson arrival (queueing included); dropped + unserved = refused with a full queue + still queued at the drain deadline"));
    }
    if let Some(table) = super::llm_tables::llm_table(run) {
        out.push(fit(&table));
        if let Some(quality) = super::llm_tables::llm_quality_table(run) {
            out.push(fit(&quality));
        }
        out.push(wrapped(super::llm_tables::LLM_NOTE));
    }
    if let Some(table) = super::llm_tables::llm_server_table(run) {
        out.push(fit(&table));
        for line in super::llm_tables::llm_search_lines(run) {
            out.push(wrapped(&line));
        }
        out.push(wrapped(super::llm_tables::LLM_SERVER_NOTE));
    }
    if let Some(note) = energy_footnote(run) {
        out.push(wrapped(&note));
    }
    out.push(fit(&cold_start_table(run)));
    let count = |s: CaseStatus| run.cases.iter().filter(|c| c.status == s).count();
    let (failed, noisy, partial) = (
        count(CaseStatus::Failed),
        count(CaseStatus::Noisy),
        count(CaseStatus::Partial),
    );
    if failed + noisy + partial > 0 {
        out.push(wrapped(&format!(
            "{failed} failed, {noisy} noisy, {partial} partial (cut short by --quick's time budget) of {} cases (reasons in the run file's `error` fields)",
            run.cases.len()
        )));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Timing of every case, and its status.
pub fn summary_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "target",
        "scenario",
        "batch",
        "p50 ms",
        "p99 ms [95% CI]",
        "samples/s",
        "noise",
        "status",
    ]);
    for c in &run.cases {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let lat = c.latency_ms.as_ref().map(|l| &l.summary);
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(&c.target),
            Cell::new(c.scenario.as_str()),
            right(c.batch_size.to_string()),
            right(lat.map(|s| fmt_ms(s.p50)).unwrap_or_else(|| "-".into())),
            right(
                lat.map(|s| {
                    format!(
                        "{} [{}, {}]",
                        fmt_ms(s.p99),
                        fmt_ms(s.p99_ci[0]),
                        fmt_ms(s.p99_ci[1])
                    )
                })
                .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.throughput_per_s
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.noise
                    .map(|n| format!("±{:.1}%", n * 100.0))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(c.status.as_str()),
        ]);
    }
    table
}

/// Memory, energy, quality and size of every case: the summary's second table, so that
/// each fits a terminal.
pub fn resources_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "case",
        "peak RSS MiB",
        "energy mJ/inf",
        "acc",
        "F1",
        "weights",
        "x base",
    ]);
    for c in &run.cases {
        let q = c.quality.as_ref();
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            Cell::new(&c.id),
            right(
                c.memory
                    .as_ref()
                    .map(|m| format!("{:.1}", m.peak_rss_bytes as f64 / (1u64 << 20) as f64))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.energy
                    .as_ref()
                    .map(fmt_energy)
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                q.map(|q| format!("{:.4}", q.accuracy))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                q.map(|q| format!("{:.4}", q.f1_macro))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(if c.model.weight_bytes > 0 {
                fmt_bytes(c.model.weight_bytes as u64)
            } else {
                "-".into()
            }),
            right(
                c.model
                    .compression_rate
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ),
        ]);
    }
    table
}

/// Server cases: offered and achieved rate, what was served, latency with the p99's CI, and
/// for a max-QPS search its result and bracket. `None` without server cases.
pub fn server_table(run: &RunResult) -> Option<Table> {
    let cases: Vec<&CaseResult> = run.cases.iter().filter(|c| c.server().is_some()).collect();
    if cases.is_empty() {
        return None;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "server case",
        "offered q/s",
        "achieved q/s",
        "served",
        "dropped+unserved",
        "late",
        "p50 ms",
        "p99 ms [95% CI]",
        "mean batch",
        "max QPS (search)",
    ]);
    for c in cases {
        let Some(s) = c.server() else { continue };
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let lat = c.latency_ms.as_ref().map(|l| &l.summary);
        let search = s
            .search
            .as_ref()
            .map(|x| {
                let rate = |q: f64| fmt_rate((q * 10.0).round() / 10.0);
                let found = match (x.max_qps, x.failing_qps) {
                    (Some(lo), Some(hi)) => format!("{} (fails at {})", rate(lo), rate(hi)),
                    (Some(lo), None) => format!(">= {} (no failing rate)", rate(lo)),
                    (None, Some(hi)) => format!("none (fails at {})", rate(hi)),
                    (None, None) => "-".into(),
                };
                format!(
                    "p99 <= {} ms: {found}, {} probes",
                    fmt_rate(x.p99_bound_ms),
                    x.probes.len()
                )
            })
            .unwrap_or_else(|| "-".into());
        table.add_row(vec![
            Cell::new(format!(
                "{}{}",
                c.id,
                if s.saturated { " SATURATED" } else { "" }
            )),
            right(format!("{:.1}", s.offered_qps)),
            right(format!("{:.1}", s.achieved_qps)),
            right(format!("{}/{}", s.served, s.queries)),
            right(format!("{}+{}", s.dropped, s.unserved)),
            right(match s.late_ms {
                Some(b) => format!("{} (>{} ms)", s.late, fmt_rate(b)),
                None => "-".into(),
            }),
            right(lat.map(|l| fmt_ms(l.p50)).unwrap_or_else(|| "-".into())),
            right(
                lat.map(|l| {
                    format!(
                        "{} [{}, {}]",
                        fmt_ms(l.p99),
                        fmt_ms(l.p99_ci[0]),
                        fmt_ms(l.p99_ci[1])
                    )
                })
                .unwrap_or_else(|| "-".into()),
            ),
            right(format!("{:.2}", s.mean_batch)),
            Cell::new(search),
        ]);
    }
    Some(table)
}

/// Load time, first inference, warm-up, and per-stage medians when stages were timed.
pub fn cold_start_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    let staged = run.cases.iter().any(|c| c.stages.is_some());
    let mut header = vec![
        "case",
        "load ms",
        "first inference ms",
        "warm-up",
        "steady p50 ms",
    ];
    if staged {
        header.extend(["preprocess p50", "forward p50", "postprocess p50"]);
    }
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for c in &run.cases {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let k = c.cold_start.as_ref();
        let mut row = vec![
            Cell::new(&c.id),
            right(
                k.map(|k| format!("{:.1}", k.load_ms))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                k.map(|k| fmt_ms(k.first_inference_ms))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(
                k.map(|k| {
                    let end = match k.warmup_end {
                        crate::schema::WarmupEnd::Stable => "stable",
                        crate::schema::WarmupEnd::MaxTime => "still moving at max_warmup_s",
                    };
                    format!("{:.0} ms, {} it, {end}", k.warmup_ms, k.warmup_iterations)
                })
                .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.latency_ms
                    .as_ref()
                    .map(|l| fmt_ms(l.summary.p50))
                    .unwrap_or_else(|| "-".into()),
            ),
        ];
        if staged {
            for stage in ["preprocess", "forward", "postprocess"] {
                let p50 = c
                    .stages
                    .as_ref()
                    .and_then(|s| s.get(stage))
                    .map(|l| fmt_ms(l.summary.p50));
                row.push(right(p50.unwrap_or_else(|| "-".into())));
            }
        }
        table.add_row(row);
    }
    table
}

/// `812 B`, `476.3 KiB`, `1.21 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Millijoules per inference; an estimate is marked `~` (explained under the table).
fn fmt_energy(e: &crate::schema::EnergyInfo) -> String {
    let mj = e.joules_per_inference * 1000.0;
    let mark = if e.method.is_estimate() { "~" } else { "" };
    match mj {
        x if x >= 10.0 => format!("{mark}{x:.1}"),
        x => format!("{mark}{x:.3}"),
    }
}

/// The line under the summary table saying how energy was obtained.
pub(super) fn energy_footnote(run: &RunResult) -> Option<String> {
    let estimate = run
        .cases
        .iter()
        .filter_map(|c| c.energy.as_ref())
        .find(|e| e.method.is_estimate())?;
    let source = estimate
        .estimate
        .as_ref()
        .map(|t| t.source.as_str())
        .unwrap_or("unknown");
    let why = estimate
        .note
        .as_deref()
        .map(|n| format!("; no counter: {n}"))
        .unwrap_or_default();
    Some(format!(
        "~ energy ESTIMATED (method estimate-tdp): worker CPU time x TDP per hardware thread, TDP from {source}{why}"
    ))
}

/// The peaks of every cached thread count; those just measured are marked `*`.
pub fn peaks_table(peaks: &Peaks, just_measured: &[usize]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "threads",
        "copy GB/s (best)",
        "copy GB/s, every repeat",
        "f32 matmul GFLOP/s (best)",
        "matmul GFLOP/s, every repeat",
        "ridge FLOP/byte",
        "sizes",
        "measured (UTC)",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for p in &peaks.by_threads {
        let mark = if just_measured.contains(&p.threads) {
            " *"
        } else {
            ""
        };
        table.add_row(vec![
            right(format!("{}{mark}", p.threads)),
            right(format!("{:.2}", p.bandwidth_gbs)),
            Cell::new(list(&p.bandwidth_runs_gbs)),
            right(format!("{:.2}", p.matmul_gflops)),
            Cell::new(list(&p.matmul_runs_gflops)),
            right(format!(
                "{:.2}",
                p.matmul_gflops / p.bandwidth_gbs.max(1e-12)
            )),
            Cell::new(format!(
                "copy {} MiB, n = {}, {} repeats",
                p.copy_bytes >> 20,
                p.matmul_n,
                p.repeats
            )),
            Cell::new(p.measured_at.format("%Y-%m-%d %H:%M:%S").to_string()),
        ]);
    }
    table
}

/// One row per layer: shapes, FLOPs, bytes, time and share.
pub fn profile_table(p: &LayerProfile) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "layer",
        "kind",
        "output shape",
        "MFLOP",
        "bytes (model)",
        "mean ms",
        "p50 ms",
        "share",
        "GFLOP/s",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for l in &p.layers {
        table.add_row(vec![
            Cell::new(&l.name),
            Cell::new(l.op_text()),
            Cell::new(crate::schema::shape_text(&l.output_shape)),
            right(format!("{:.3}", l.flops as f64 / 1e6)),
            right(fmt_bytes(l.bytes)),
            right(fmt_ms(l.mean_ms)),
            right(fmt_ms(l.p50_ms)),
            right(format!("{:.1}%", l.share * 100.0)),
            right(if l.flops > 0 {
                format!("{:.2}", l.gflops)
            } else {
                "-".into()
            }),
        ]);
    }
    table
}

#[cfg(test)]
mod tests;
