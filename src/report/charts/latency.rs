//! Latency per variant and target, latency distributions, throughput against batch size.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;

use super::super::axis::{CategoryAxis, ValueAxis};
use super::super::data::{CaseView, ReportData};
use super::super::format;
use super::*;
use crate::schema::{CaseStatus, Scenario};

/// Row label of a headline case: `cnn-baseline · cpu-t1`, with the scenario when it is not
/// single-stream and a mark when the case is noisy.
pub(super) fn row_label(d: &ReportData, c: &CaseView) -> String {
    let mut s = format!("{} · {}", d.variant_of(c), c.case.target);
    if c.case.scenario != Scenario::SingleStream {
        s.push_str(&format!(" ({} b{})", c.case.scenario, c.case.batch_size));
    }
    match c.case.status {
        CaseStatus::Noisy => s.push_str(" (noisy)"),
        CaseStatus::Partial => s.push_str(" (partial)"),
        _ => {}
    }
    s
}

fn target_index(targets: &[String], target: &str) -> usize {
    targets.iter().position(|t| t == target).unwrap_or(0)
}

pub fn latency(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Latency per variant and target: p50 with its 95% CI, p99 marked";
    let rows = d.headline();
    if rows.is_empty() {
        return omitted(TITLE, "no case has latency samples (all failed or skipped)");
    }
    let targets = d.targets();
    let labels: Vec<String> = rows.iter().map(|c| row_label(d, c)).collect();
    let stats: Vec<_> = rows
        .iter()
        .map(|c| {
            &c.case
                .latency_ms
                .as_ref()
                .expect("headline cases are measured")
                .summary
        })
        .collect();
    let axis = ValueAxis::fit(
        stats
            .iter()
            .flat_map(|s| [s.p50, s.p50_ci[0], s.p50_ci[1], s.p99]),
        true,
        0.22,
    );
    let mut legend: Vec<Entry> = Vec::new();
    for t in &targets {
        if rows.iter().any(|c| &c.case.target == t) {
            legend.push(entry(
                Swatch::Bar(color(target_index(&targets, t))),
                format!("p50 on {t}"),
            ));
        }
    }
    legend.push(entry(Swatch::Whisker, "95% bootstrap CI of p50"));
    legend.push(entry(Swatch::Triangle, "p99"));
    let height = height_for(rows.len(), 38, &legend, 420);
    let caption = format!(
        "Median latency of one iteration for each variant on each target: single-stream (batch 1) where it was run, else the smallest offline batch (named in the row). Whiskers: 95% bootstrap confidence interval of the median; triangle: 99th percentile; the figures are written beside each bar.{}",
        if axis.log { " Log scale: the values span more than 20x." } else { "" }
    );
    let png = chart("latency.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let n = rows.len();
        let mut ch = rows_chart(
            root,
            &body,
            &axis,
            &labels,
            &format!("latency per iteration (ms{})", axis.scale_note()),
            "variant · target",
        )?;
        for (i, (c, s)) in rows.iter().zip(&stats).enumerate() {
            let y = row_y(i, n);
            let col = color(target_index(&targets, &c.case.target));
            ch.draw_series([Rectangle::new(
                [(axis.lo, y - 0.32), (s.p50, y + 0.32)],
                col.filled(),
            )])?;
            let ink = INK.stroke_width(2);
            ch.draw_series([
                PathElement::new(vec![(s.p50_ci[0], y), (s.p50_ci[1], y)], ink),
                PathElement::new(vec![(s.p50_ci[0], y - 0.16), (s.p50_ci[0], y + 0.16)], ink),
                PathElement::new(vec![(s.p50_ci[1], y - 0.16), (s.p50_ci[1], y + 0.16)], ink),
            ])?;
            ch.draw_series([TriangleMarker::new((s.p99, y), 7, INK.filled())])?;
            let right = s.p99.max(s.p50_ci[1]);
            annotate(
                root,
                &ch,
                (right, y),
                (12, 0),
                &format!("p50 {} · p99 {} ms", format::ms(s.p50), format::ms(s.p99)),
                style(LABEL_SIZE - 1).at(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}

/// Quartiles and Tukey whiskers of a sample (linear interpolation, as `stats`).
pub(super) struct BoxStats {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub lo_whisker: f64,
    pub hi_whisker: f64,
    pub outliers: Vec<f64>,
}

/// One horizontal box plot at row `y`: whiskers with end caps, the box from q1 to q3 in
/// `col`, the median as a heavy line, and the outliers as rings.
pub(super) fn draw_box(
    ch: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<ValueAxis, CategoryAxis>>,
    b: &BoxStats,
    y: f64,
    col: RGBColor,
) -> super::DrawResult {
    let ink = INK.stroke_width(2);
    ch.draw_series([
        PathElement::new(vec![(b.lo_whisker, y), (b.q1, y)], ink),
        PathElement::new(vec![(b.q3, y), (b.hi_whisker, y)], ink),
        PathElement::new(
            vec![(b.lo_whisker, y - 0.15), (b.lo_whisker, y + 0.15)],
            ink,
        ),
        PathElement::new(
            vec![(b.hi_whisker, y - 0.15), (b.hi_whisker, y + 0.15)],
            ink,
        ),
    ])?;
    ch.draw_series([Rectangle::new(
        [(b.q1, y - 0.3), (b.q3, y + 0.3)],
        col.mix(0.55).filled(),
    )])?;
    ch.draw_series([Rectangle::new(
        [(b.q1, y - 0.3), (b.q3, y + 0.3)],
        col.stroke_width(2),
    )])?;
    ch.draw_series([PathElement::new(
        vec![(b.median, y - 0.3), (b.median, y + 0.3)],
        INK.stroke_width(3),
    )])?;
    ch.draw_series(
        b.outliers
            .iter()
            .map(|&x| Circle::new((x, y), 3, INK.mix(0.6).stroke_width(1))),
    )?;
    Ok(())
}

pub(super) fn box_stats(samples: &[f64]) -> Option<BoxStats> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let q1 = crate::stats::percentile(&s, 0.25);
    let median = crate::stats::percentile(&s, 0.5);
    let q3 = crate::stats::percentile(&s, 0.75);
    let iqr = q3 - q1;
    let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let inside: Vec<f64> = s
        .iter()
        .copied()
        .filter(|x| *x >= lo_fence && *x <= hi_fence)
        .collect();
    Some(BoxStats {
        q1,
        median,
        q3,
        lo_whisker: inside.first().copied().unwrap_or(q1),
        hi_whisker: inside.last().copied().unwrap_or(q3),
        outliers: s
            .into_iter()
            .filter(|x| *x < lo_fence || *x > hi_fence)
            .collect(),
    })
}

pub fn distribution(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Latency distributions from the raw samples";
    let rows: Vec<&CaseView> = d
        .headline()
        .into_iter()
        .filter(|c| {
            c.case
                .latency_ms
                .as_ref()
                .is_some_and(|l| !l.samples.is_empty())
        })
        .collect();
    if rows.is_empty() {
        return omitted(TITLE, "no case kept raw latency samples");
    }
    let targets = d.targets();
    let labels: Vec<String> = rows.iter().map(|c| row_label(d, c)).collect();
    // When the medians differ by more than 20x, one millisecond axis would squeeze every box
    // to a sliver: each case's samples are then divided by its own median, so the shapes
    // (spread, tail) compare on one axis, and each row says its median in ms.
    let medians: Vec<f64> = rows.iter().map(|c| c.p50().unwrap_or(1.0)).collect();
    let (lo, hi) = medians
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &m| (a.min(m), b.max(m)));
    let relative = hi / lo > super::super::axis::LOG_RATIO;
    let scaled: Vec<Vec<f64>> = rows
        .iter()
        .zip(&medians)
        .map(|(c, &m)| {
            let l = c.case.latency_ms.as_ref().expect("filtered");
            if relative && m > 0.0 {
                l.samples.iter().map(|x| x / m).collect()
            } else {
                l.samples.clone()
            }
        })
        .collect();
    let boxes: Vec<BoxStats> = scaled.iter().filter_map(|s| box_stats(s)).collect();
    let axis = ValueAxis::fit(scaled.iter().flatten().copied(), !relative, 0.2);
    let x_desc = if relative {
        format!(
            "latency / the case's median (×{}); medians differ more than 20x between cases",
            axis.scale_note()
        )
    } else {
        format!("latency per iteration (ms{})", axis.scale_note())
    };
    let mut legend: Vec<Entry> = Vec::new();
    for t in &targets {
        if rows.iter().any(|c| &c.case.target == t) {
            legend.push(entry(
                Swatch::Bar(color(target_index(&targets, t))),
                format!("quartiles on {t}, line at the median"),
            ));
        }
    }
    legend.push(entry(
        Swatch::Whisker,
        "whiskers: last sample within 1.5 IQR",
    ));
    legend.push(entry(Swatch::Hollow(INK), "outlier (beyond 1.5 IQR)"));
    let height = height_for(rows.len(), 40, &legend, 420);
    let caption = format!(
        "Box plots of every latency sample of the same cases as the latency chart: the box spans the first to third quartile, the dark line is the median, whiskers reach the last sample within 1.5 interquartile ranges, and dots are the samples beyond (Tukey's outliers, counted in the run file, never removed). n is the sample count.{}{}",
        if relative {
            " The cases' medians differ by more than 20x, so each case's samples are shown divided by its own median (1 = its median, written beside it in ms): the spread and the tail compare across cases; the latency chart compares the absolute figures."
        } else {
            ""
        },
        if axis.log { " Log scale." } else { "" }
    );
    let png = chart("latency-distribution.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let n = rows.len();
        let mut ch = rows_chart(root, &body, &axis, &labels, &x_desc, "variant · target")?;
        for (i, (c, b)) in rows.iter().zip(&boxes).enumerate() {
            let y = row_y(i, n);
            let col = color(target_index(&targets, &c.case.target));
            draw_box(&mut ch, b, y, col)?;
            let right = b
                .outliers
                .last()
                .copied()
                .unwrap_or(b.hi_whisker)
                .max(b.hi_whisker);
            let count = c
                .case
                .latency_ms
                .as_ref()
                .map(|l| l.samples.len())
                .unwrap_or(0);
            annotate(
                root,
                &ch,
                (right, y),
                (10, 0),
                &if relative {
                    format!("p50 {} ms, n = {count}", format::ms(medians[i]))
                } else {
                    format!("n = {count}")
                },
                style(LABEL_SIZE - 1).at(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}

pub fn throughput(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Throughput against batch size (offline scenario)";
    // One series per (run, variant, target): its name and (batch, samples/s) by batch.
    type Series = (String, Vec<(f64, f64)>);
    let mut series: Vec<Series> = Vec::new();
    for c in d
        .cases
        .iter()
        .filter(|c| c.case.scenario == Scenario::Offline && c.measured())
    {
        let Some(t) = c.case.throughput_per_s else {
            continue;
        };
        let name = format!("{} · {}", d.variant_of(c), c.case.target);
        match series.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.1.push((c.case.batch_size as f64, t)),
            None => series.push((name, vec![(c.case.batch_size as f64, t)])),
        }
    }
    for s in &mut series {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let mut batches: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    batches.sort_by(f64::total_cmp);
    batches.dedup();
    if batches.len() < 2 {
        return omitted(
            TITLE,
            "needs offline cases measured at two or more batch sizes; this run has fewer",
        );
    }
    let x = ValueAxis {
        lo: batches[0] / 1.6,
        hi: batches[batches.len() - 1] * 1.6,
        log: true,
        ticks: Some(batches.clone()),
        bytes: false,
    };
    let y = ValueAxis::fit(
        series.iter().flat_map(|s| s.1.iter().map(|p| p.1)),
        true,
        0.0,
    );
    let legend: Vec<Entry> = series
        .iter()
        .enumerate()
        .map(|(i, s)| entry(Swatch::Line(color(i)), s.0.clone()))
        .collect();
    let height = 720 + legend_height(&legend);
    let caption = format!(
        "Samples (inputs) per second over the measured window of each offline case, against the batch size (log scale), one line per variant and target. A line that rises is still gaining from batching; one that falls has passed its best batch on this machine.{}",
        if y.log { " The throughput axis is logarithmic." } else { "" }
    );
    let png = chart("throughput.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let mut ch = ChartBuilder::on(&body)
            .margin(16)
            .margin_right(40)
            .x_label_area_size(56)
            .y_label_area_size(value_label_area(&y))
            .build_cartesian_2d(x.clone(), y.clone())?;
        axes(
            root,
            &mut ch,
            Some("batch size (log scale)"),
            Some(&format!("throughput (samples/s{})", y.scale_note())),
            (true, true),
        )?;
        for (i, s) in series.iter().enumerate() {
            let col = color(i);
            ch.draw_series(LineSeries::new(s.1.iter().copied(), col.stroke_width(3)))?;
            ch.draw_series(s.1.iter().map(|&p| Circle::new(p, 5, col.filled())))?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
