//! Memory of each language-model variant: weight bytes, the KV cache at its longest context
//! (computed, and the measured resident growth beside it) and the peak resident set size.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::llm::server_record;
use super::text::style;

use super::super::axis::ValueAxis;
use super::super::data::ReportData;
use super::super::format;
use super::*;

/// One variant's memory figures (bytes); absent where no case recorded them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LlmMemoryRow {
    pub name: String,
    pub weight_bytes: Option<f64>,
    /// Computed KV cache bytes at the longest context of the variant's cases, and that context.
    pub kv_computed: Option<(f64, usize)>,
    /// Resident growth after load measured at that same case (may be <= 0).
    pub kv_rss_growth: Option<f64>,
    /// The largest peak RSS of the variant's LLM cases.
    pub peak_rss: Option<f64>,
}

/// One row per (run, variant) with a prefill, decode, generate or llm_server case.
pub(crate) fn llm_memory_rows(d: &ReportData) -> Vec<LlmMemoryRow> {
    let is_llm =
        |c: &&super::super::data::CaseView| c.case.llm().is_some() || server_record(c).is_some();
    let mut out = Vec::new();
    for (run, variant) in d.variants() {
        let cases: Vec<_> = d
            .cases
            .iter()
            .filter(|c| c.run == run && c.variant() == variant)
            .filter(is_llm)
            .collect();
        if cases.is_empty() {
            continue;
        }
        let weight_bytes = cases
            .iter()
            .map(|c| c.case.model.weight_bytes)
            .find(|&w| w > 0)
            .map(|w| w as f64);
        let kv = cases
            .iter()
            .filter_map(|c| c.case.llm().and_then(|l| l.kv_cache.as_ref()))
            .max_by_key(|k| (k.context_tokens, k.computed_bytes));
        let peak_rss = cases
            .iter()
            .filter_map(|c| c.case.memory.as_ref().map(|m| m.peak_rss_bytes))
            .max()
            .map(|b| b as f64);
        out.push(LlmMemoryRow {
            name: d.tag(&variant, run),
            weight_bytes,
            kv_computed: kv.map(|k| (k.computed_bytes as f64, k.context_tokens)),
            kv_rss_growth: kv.and_then(|k| k.rss_growth_bytes).map(|g| g as f64),
            peak_rss,
        });
    }
    out.retain(|r| r.weight_bytes.is_some() || r.kv_computed.is_some() || r.peak_rss.is_some());
    out
}

/// The bars of a row, in drawing order: (label for the legend index, value, text).
fn bars(r: &LlmMemoryRow) -> [(usize, Option<f64>, String); 4] {
    let b = format::bytes;
    [
        (
            0,
            r.weight_bytes,
            r.weight_bytes
                .map(|w| format!("weights {}", b(w)))
                .unwrap_or_default(),
        ),
        (
            1,
            r.kv_computed.map(|k| k.0),
            r.kv_computed
                .map(|(k, n)| format!("KV {} at {n} tokens", b(k)))
                .unwrap_or_default(),
        ),
        (
            2,
            r.kv_rss_growth.filter(|g| *g > 0.0),
            match r.kv_rss_growth {
                Some(g) if g > 0.0 => format!("RSS growth {}", b(g)),
                Some(_) => "RSS growth ≤ 0 (allocator reuse)".into(),
                None => String::new(),
            },
        ),
        (
            3,
            r.peak_rss,
            r.peak_rss
                .map(|p| format!("peak RSS {}", b(p)))
                .unwrap_or_default(),
        ),
    ]
}

pub fn memory(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "LLM memory per variant: weights, KV cache, peak RSS";
    if d.cases
        .iter()
        .all(|c| c.case.llm().is_none() && server_record(c).is_none())
    {
        return Ok(Outcome::Drawn(Vec::new()));
    }
    let rows = llm_memory_rows(d);
    if rows.is_empty() {
        return omitted(TITLE, "no language-model case recorded its memory");
    }
    let labels: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let axis = ValueAxis {
        bytes: true,
        ..ValueAxis::fit(
            rows.iter()
                .flat_map(|r| bars(r).into_iter().filter_map(|b| b.1)),
            true,
            0.3,
        )
    };
    let names = [
        "weight bytes (the GGUF's tensors)",
        "KV cache, computed at the longest context",
        "resident growth after load at that context (measured)",
        "peak RSS of the worker (largest of the variant's cases)",
    ];
    let legend: Vec<Entry> = names
        .iter()
        .enumerate()
        .map(|(i, n)| entry(Swatch::Bar(color(i)), *n))
        .collect();
    let height = height_for(rows.len(), 96, &legend, 420);
    let caption = format!(
        "Per variant: the bytes of its weights; its KV cache at the longest context any of its cases held (layers x 2 x positions x KV heads x head size x 4 bytes, as candle keeps K and V in f32), computed from the GGUF header; beside it the worker's measured resident-memory growth from after the model was loaded to the end of that case (the cache, the last logits and whatever the allocator kept); and the peak resident set size of the variant's cases, which holds the runtime, the weights and the cache.{}",
        if axis.log { " Log scale: the figures span more than 20x." } else { "" }
    );
    let png = chart("llm-memory.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let n = rows.len();
        let mut ch = rows_chart(
            root,
            &body,
            &axis,
            &labels,
            &format!("memory{}", axis.scale_note()),
            "variant",
        )?;
        for (i, r) in rows.iter().enumerate() {
            let y = row_y(i, n);
            for (k, value, text) in bars(r) {
                // Four thin bars per row, the first at the top.
                let top = y + 0.4 - k as f64 * 0.2;
                let (y0, y1) = (top - 0.17, top);
                let mid = (y0 + y1) / 2.0;
                let end = match value {
                    Some(v) => {
                        ch.draw_series([Rectangle::new(
                            [(axis.lo, y0), (v, y1)],
                            color(k).filled(),
                        )])?;
                        v
                    }
                    None => axis.lo,
                };
                if !text.is_empty() {
                    annotate(
                        root,
                        &ch,
                        (end, mid),
                        (8, 0),
                        &text,
                        style(LABEL_SIZE - 2).at(HPos::Left, VPos::Center),
                    )?;
                }
            }
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
