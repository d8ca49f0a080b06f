//! Tokens per second of every prefill, decode and generate case, mean over repetitions with its
//! 95% CI: one chart per scenario kind, a bar per variant, test and target (threads).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::llm::{cases_of, grouped_by_test, row_label, target_index, TIMED_NOTE};
use super::text::style;

use super::super::axis::ValueAxis;
use super::super::data::ReportData;
use super::super::format;
use super::*;
use crate::schema::Scenario;

/// One bar: the case's name, its target (the colour), the mean t/s and its CI.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateRow {
    pub label: String,
    pub target: String,
    pub mean: f64,
    /// Student-t 95% CI of the mean; absent with one repetition.
    pub ci: Option<[f64; 2]>,
    pub repetitions: usize,
}

/// The bars of one scenario kind, grouped by test.
pub(crate) fn rate_rows(d: &ReportData, scenario: Scenario) -> Vec<RateRow> {
    grouped_by_test(cases_of(d, scenario))
        .into_iter()
        .filter_map(|(c, l)| {
            let r = l.tokens_per_s.as_ref()?;
            Some(RateRow {
                label: row_label(d, c, &l.test),
                target: c.case.target.clone(),
                mean: r.mean,
                ci: r.mean_ci,
                repetitions: l.repetitions,
            })
        })
        .collect()
}

/// Title, file and how the rate is counted, per scenario kind.
fn kind_text(scenario: Scenario) -> (&'static str, &'static str, &'static str) {
    match scenario {
        Scenario::Prefill => (
            "Prefill: prompt tokens per second, mean with its 95% CI",
            "llm-tokens-prefill.png",
            "prompt tokens / TTFT (the prefill of the prompt into an empty cache)",
        ),
        Scenario::Decode => (
            "Decode: generated tokens per second, mean with its 95% CI",
            "llm-tokens-decode.png",
            "new tokens / the sum of their decode steps (after `depth` context tokens, filled untimed)",
        ),
        _ => (
            "Generate: prompt and generated tokens per second, mean with its 95% CI",
            "llm-tokens-generate.png",
            "(prompt + new tokens) / end-to-end time",
        ),
    }
}

/// One chart per scenario kind that has measured cases.
pub fn tokens_per_s(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Tokens per second per variant";
    if !super::llm::any_generation(d) {
        return Ok(Outcome::Drawn(Vec::new()));
    }
    let mut charts = Vec::new();
    for scenario in [Scenario::Prefill, Scenario::Decode, Scenario::Generate] {
        let rows = rate_rows(d, scenario);
        if !rows.is_empty() {
            charts.push(rate_chart(d, scenario, &rows)?);
        }
    }
    if charts.is_empty() {
        return omitted(
            TITLE,
            "no prefill, decode or generate case was measured (all failed or were skipped)",
        );
    }
    Ok(Outcome::Drawn(charts))
}

fn rate_chart(d: &ReportData, scenario: Scenario, rows: &[RateRow]) -> Result<Chart, String> {
    let (title, file, counted) = kind_text(scenario);
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let axis = ValueAxis::fit(
        rows.iter()
            .flat_map(|r| [r.mean, r.ci.map_or(r.mean, |c| c[1])]),
        true,
        0.25,
    );
    let targets = d.targets();
    let mut legend: Vec<Entry> = targets
        .iter()
        .filter(|t| rows.iter().any(|r| &r.target == *t))
        .map(|t| {
            entry(
                Swatch::Bar(color(target_index(d, t))),
                format!("mean t/s on {t}"),
            )
        })
        .collect();
    legend.push(entry(Swatch::Whisker, "Student-t 95% CI of the mean"));
    let height = height_for(rows.len(), 38, &legend, 380);
    let caption = format!(
        "Tokens per second counted as llama-bench counts them: {counted}, per repetition. Bar: the mean over repetitions (llama-bench's avg_ts); whisker: its Student-t 95% confidence interval (none with a single repetition); the figure and the repetition count are written beside each bar. One bar per variant, test and target (the target names the thread count). {TIMED_NOTE}{}",
        if axis.log { " Log scale: the values span more than 20x." } else { "" }
    );
    chart(file, title, caption, height, |root| {
        let body = frame(root, title, &legend)?;
        let n = rows.len();
        let mut ch = rows_chart(
            root,
            &body,
            &axis,
            &labels,
            &format!("tokens per second{}", axis.scale_note()),
            "variant · test · target",
        )?;
        for (i, r) in rows.iter().enumerate() {
            let y = row_y(i, n);
            let col = color(target_index(d, &r.target));
            ch.draw_series([Rectangle::new(
                [(axis.lo, y - 0.32), (r.mean, y + 0.32)],
                col.filled(),
            )])?;
            let mut right = r.mean;
            let text = match r.ci {
                Some([lo, hi]) => {
                    let ink = INK.stroke_width(2);
                    ch.draw_series([
                        PathElement::new(vec![(lo, y), (hi, y)], ink),
                        PathElement::new(vec![(lo, y - 0.16), (lo, y + 0.16)], ink),
                        PathElement::new(vec![(hi, y - 0.16), (hi, y + 0.16)], ink),
                    ])?;
                    right = right.max(hi);
                    format!(
                        "{} ± {} t/s, {} reps",
                        format::rate(r.mean),
                        format::num((hi - lo) / 2.0),
                        r.repetitions
                    )
                }
                None => format!("{} t/s, {} rep", format::rate(r.mean), r.repetitions),
            };
            annotate(
                root,
                &ch,
                (right, y),
                (12, 0),
                &text,
                style(LABEL_SIZE - 1).at(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })
}
