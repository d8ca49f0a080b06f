//! Inter-token latency of the decode cases: a box plot of every timed decode step per variant,
//! test and target, with p90 and p99 marked.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::latency::{box_stats, draw_box, BoxStats};
use super::llm::{cases_of, grouped_by_test, row_label, target_index, TIMED_NOTE};
use super::text::style;

use super::super::axis::ValueAxis;
use super::super::data::ReportData;
use super::super::format;
use super::*;
use crate::schema::Scenario;

/// One decode case's steps: its name, target, quartiles and percentiles.
pub(crate) struct ItlRow {
    pub label: String,
    pub target: String,
    pub boxes: BoxStats,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub steps: usize,
}

/// The decode cases that kept their steps, grouped by test.
pub(crate) fn itl_rows(d: &ReportData) -> Vec<ItlRow> {
    grouped_by_test(cases_of(d, Scenario::Decode))
        .into_iter()
        .filter_map(|(c, l)| {
            let itl = l.itl_ms.as_ref()?;
            Some(ItlRow {
                label: row_label(d, c, &l.test),
                target: c.case.target.clone(),
                boxes: box_stats(&itl.samples)?,
                p50: itl.summary.p50,
                p90: itl.summary.p90,
                p99: itl.summary.p99,
                steps: itl.samples.len(),
            })
        })
        .collect()
}

pub fn itl(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Decode: inter-token latency distribution per variant";
    if d.cases.iter().all(|c| c.case.scenario != Scenario::Decode) {
        return Ok(Outcome::Drawn(Vec::new()));
    }
    let rows = itl_rows(d);
    if rows.is_empty() {
        return omitted(
            TITLE,
            "no decode case kept its steps' latencies (all failed or were skipped)",
        );
    }
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let axis = ValueAxis::fit(
        rows.iter().flat_map(|r| {
            let b = &r.boxes;
            let top = b.outliers.last().copied().unwrap_or(b.hi_whisker);
            [b.lo_whisker, b.q1, b.median, top, r.p99]
        }),
        true,
        0.3,
    );
    let mut legend: Vec<Entry> = d
        .targets()
        .iter()
        .filter(|t| rows.iter().any(|r| &r.target == *t))
        .map(|t| {
            entry(
                Swatch::Bar(color(target_index(d, t))),
                format!("quartiles on {t}, line at the median"),
            )
        })
        .collect();
    legend.push(entry(Swatch::Whisker, "whiskers: last step within 1.5 IQR"));
    legend.push(entry(Swatch::Hollow(INK), "outlier (beyond 1.5 IQR)"));
    legend.push(entry(Swatch::Triangle, "p99"));
    let height = height_for(rows.len(), 40, &legend, 380);
    let caption = format!(
        "Every timed decode step of every repetition of each decode case (n steps): one step is one generated token's model call after a context of `depth` tokens plus the tokens generated before it. The box spans the first to third quartile, the dark line is the median, whiskers reach the last step within 1.5 interquartile ranges, dots are the steps beyond (kept, never removed), the triangle is the 99th percentile; p50, p90 and p99 are written beside each row (their 95% bootstrap CIs are in the run file). {TIMED_NOTE}{}",
        if axis.log { " Log scale." } else { "" }
    );
    let png = chart("llm-itl.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let n = rows.len();
        let mut ch = rows_chart(
            root,
            &body,
            &axis,
            &labels,
            &format!(
                "inter-token latency: one decode step (ms{})",
                axis.scale_note()
            ),
            "variant · test · target",
        )?;
        for (i, r) in rows.iter().enumerate() {
            let y = row_y(i, n);
            let b = &r.boxes;
            let col = color(target_index(d, &r.target));
            draw_box(&mut ch, b, y, col)?;
            ch.draw_series([TriangleMarker::new((r.p99, y + 0.3), 6, INK.filled())])?;
            let right = b
                .outliers
                .last()
                .copied()
                .unwrap_or(b.hi_whisker)
                .max(b.hi_whisker)
                .max(r.p99);
            annotate(
                root,
                &ch,
                (right, y),
                (12, 0),
                &format!(
                    "p50 {} · p90 {} · p99 {} ms, n = {}",
                    format::ms(r.p50),
                    format::ms(r.p90),
                    format::ms(r.p99),
                    r.steps
                ),
                style(LABEL_SIZE - 1).at(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
