//! The terminal tables of language-model runs: llama-bench's table (one row per test, tokens
//! per second with its CI) with TTFT, ITL and the KV cache beside it, and the variants'
//! quality on their token ids.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::tables::{fmt_bytes, fmt_ms};
use crate::schema::{CaseResult, LlmServerInfo, RunResult, ScenarioRecord, Summary};

/// What every LLM table's reader must know, printed under it.
pub const LLM_NOTE: &str = "llm: t/s counted as llama-bench counts them (prompt tokens / TTFT, new tokens / decode steps, both / end-to-end), mean over repetitions ± its 95% CI half-width; each repetition starts from an empty KV cache; greedy sampling and detokenization are outside the timed region; KV = computed at the test's context (RSS growth after load beside it)";

/// `135M`, `1.24B` parameters, as llama-bench prints them.
fn fmt_params(p: usize) -> String {
    match p as f64 {
        x if x >= 1e9 => format!("{:.2} B", x / 1e9),
        x if x >= 1e6 => format!("{:.2} M", x / 1e6),
        x => format!("{:.0}", x),
    }
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// llama-bench's table for the run's prefill, decode and generate cases; `None` without any.
pub fn llm_table(run: &RunResult) -> Option<Table> {
    let cases: Vec<&CaseResult> = run.cases.iter().filter(|c| c.llm().is_some()).collect();
    if cases.is_empty() {
        return None;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "model",
        "variant",
        "size",
        "params",
        "threads",
        "test",
        "t/s",
        "TTFT p50 ms",
        "ITL p50 / p99 ms",
        "KV (RSS growth)",
        "reps",
        "status",
    ]);
    let dash = || "-".to_string();
    for c in cases {
        let Some(l) = c.llm() else { continue };
        let rate = l.tokens_per_s.as_ref().map(|r| match r.mean_ci {
            Some([lo, hi]) => format!("{:.2} ± {:.2}", r.mean, (hi - lo) / 2.0),
            None => format!("{:.2}", r.mean),
        });
        let itl = l
            .itl_ms
            .as_ref()
            .map(|d| format!("{} / {}", fmt_ms(d.summary.p50), fmt_ms(d.summary.p99)));
        let kv = l.kv_cache.as_ref().map(|k| {
            let growth = k
                .rss_growth_bytes
                .map(|g| {
                    let sign = if g < 0 { "-" } else { "" };
                    format!(" ({sign}{})", fmt_bytes(g.unsigned_abs()))
                })
                .unwrap_or_default();
            format!("{}{growth}", fmt_bytes(k.computed_bytes))
        });
        table.add_row(vec![
            Cell::new(&c.model_name),
            Cell::new(&c.variant),
            right(if c.model.weight_bytes > 0 {
                fmt_bytes(c.model.weight_bytes as u64)
            } else {
                dash()
            }),
            right(fmt_params(c.model.params)),
            right(c.threads.to_string()),
            Cell::new(&l.test),
            right(rate.unwrap_or_else(dash)),
            right(
                l.ttft_ms
                    .as_ref()
                    .map(|d| fmt_ms(d.summary.p50))
                    .unwrap_or_else(dash),
            ),
            right(itl.unwrap_or_else(dash)),
            right(kv.unwrap_or_else(dash)),
            right(l.repetitions.to_string()),
            Cell::new(c.status.as_str()),
        ]);
    }
    Some(table)
}

/// One row per language-model variant with quality figures: perplexity, and against the
/// baseline the KL divergence, its p99, the same-top-token share and RMS Δp. `None` without.
pub fn llm_quality_table(run: &RunResult) -> Option<Table> {
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for c in &run.cases {
        let Some(q) = &c.llm_quality else { continue };
        if !seen.insert((c.model_name.clone(), c.variant.clone())) {
            continue;
        }
        let k = q.kld.as_ref();
        let pm = |x: f64, u: f64, digits: usize| format!("{x:.digits$} ± {u:.digits$}");
        let dash = || "-".to_string();
        rows.push(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            right(pm(q.perplexity, q.perplexity_uncertainty, 4)),
            right(k.map(|k| pm(k.mean, k.uncertainty, 6)).unwrap_or_else(dash)),
            right(k.map(|k| format!("{:.6}", k.p99)).unwrap_or_else(dash)),
            right(
                k.map(|k| pm(100.0 * k.same_top, 100.0 * k.same_top_uncertainty, 2))
                    .unwrap_or_else(dash),
            ),
            right(
                k.map(|k| pm(100.0 * k.rms_dp, 100.0 * k.rms_dp_uncertainty, 3))
                    .unwrap_or_else(dash),
            ),
            right(q.scored_tokens.to_string()),
            Cell::new(&q.dataset),
        ]);
    }
    if rows.is_empty() {
        return None;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "PPL",
        "KLD vs baseline",
        "KLD p99",
        "same top %",
        "RMS Δp %",
        "scored",
        "scored on",
    ]);
    for row in rows {
        table.add_row(row);
    }
    Some(table)
}

/// What the LLM server table's reader must know, printed under it.
pub const LLM_SERVER_NOTE: &str = "llm_server: requests arrive by a seeded Poisson process and are served one sequence at a time; req/s off → done = the schedule's own rate → requests served per second; t/s = generated tokens per second; TTFT = first token - arrival (queueing included); TPOT = (end-to-end - TTFT) / (output tokens - 1); dropped = refused with a full queue + unserved at the drain deadline, of all requests; a search's row is its highest passing probe";

fn server_record(c: &CaseResult) -> Option<&LlmServerInfo> {
    match &c.record {
        Some(ScenarioRecord::LlmServer(s)) => Some(s),
        _ => None,
    }
}

/// `p50 / p99` of a distribution, ms.
fn p50_p99(s: Option<&Summary>) -> String {
    s.map(|s| format!("{} / {}", fmt_ms(s.p50), fmt_ms(s.p99)))
        .unwrap_or_else(|| "-".into())
}

/// The result of each `find_max_qps` search, one line per llm_server case that ran one.
pub fn llm_search_lines(run: &RunResult) -> Vec<String> {
    run.cases
        .iter()
        .filter_map(|c| {
            let s = server_record(c)?;
            let x = s.search.as_ref()?;
            let rate = |q: f64| format!("{q:.3}");
            let found = match (x.max_qps, x.failing_qps) {
                (Some(lo), Some(hi)) => {
                    format!("max {} req/s (fails at {})", rate(lo), rate(hi))
                }
                (Some(lo), None) => format!("at least {} req/s (no rate failed)", rate(lo)),
                (None, Some(hi)) => format!("none passed (even {} req/s failed)", rate(hi)),
                (None, None) => "none passed".into(),
            };
            Some(format!(
                "find_max_qps {}-{} t{} pp{}+tg{}: {found}; bounds TTFT p99 <= {} ms, TPOT p99 <= {} ms; {} probes",
                c.model_name,
                c.variant,
                c.threads,
                s.prompt_tokens,
                s.output_tokens,
                fmt_ms(x.ttft_p99_bound_ms),
                fmt_ms(x.tpot_p99_bound_ms),
                x.probes.len()
            ))
        })
        .collect()
}

/// One row per llm_server case: offered and achieved rates, generated tokens/s, TTFT and TPOT
/// p50 / p99, and dropped (or unserved) of all requests. `None` without such cases.
pub fn llm_server_table(run: &RunResult) -> Option<Table> {
    let rows: Vec<(&CaseResult, &LlmServerInfo)> = run
        .cases
        .iter()
        .filter_map(|c| server_record(c).map(|s| (c, s)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "thr",
        "test",
        "req/s off → done",
        "t/s",
        "TTFT p50 / p99 ms",
        "TPOT p50 / p99 ms",
        "dropped",
    ]);
    for (c, s) in rows {
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            right(c.threads.to_string()),
            Cell::new(format!("pp{}+tg{}", s.prompt_tokens, s.output_tokens)),
            right(format!("{:.3} → {:.3}", s.offered_qps, s.achieved_qps)),
            right(format!("{:.1}", s.generated_tokens_per_s)),
            right(p50_p99(s.ttft_ms.as_ref())),
            right(p50_p99(s.tpot_ms.as_ref())),
            right(format!("{}/{}", s.dropped + s.unserved, s.requests)),
        ]);
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_print_as_llama_bench_prints_them() {
        assert_eq!(fmt_params(134_515_008), "134.52 M");
        assert_eq!(fmt_params(1_235_814_400), "1.24 B");
        assert_eq!(fmt_params(5_000), "5000");
    }
}
