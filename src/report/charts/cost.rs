//! Quality against cost (latency, energy) with the Pareto front, and model size.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;

use super::super::axis::{CategoryAxis, ValueAxis};
use super::super::data::{pareto_front, CaseView, ReportData, ScoreKind};
use super::super::format;
use super::*;

/// One point of a quality-vs-cost chart.
pub(crate) struct CostPoint<'a> {
    pub case: &'a CaseView,
    pub name: String,
    pub cost: f64,
    /// Percent.
    pub score: f64,
    pub estimated: bool,
    pub weight_bytes: f64,
}

/// The Pareto front of each (run, target) among `points`: indices into `points`, cheapest
/// first.
pub(crate) fn fronts(points: &[CostPoint<'_>]) -> Vec<((usize, String), Vec<usize>)> {
    let key = |p: &CostPoint<'_>| (p.case.run, p.case.case.target.clone());
    let mut keys: Vec<(usize, String)> = Vec::new();
    for p in points {
        if !keys.contains(&key(p)) {
            keys.push(key(p));
        }
    }
    keys.into_iter()
        .map(|k| {
            let members: Vec<usize> = (0..points.len())
                .filter(|&i| key(&points[i]) == k)
                .collect();
            let pts: Vec<(f64, f64)> = members
                .iter()
                .map(|&i| (points[i].cost, points[i].score))
                .collect();
            let front = pareto_front(&pts).into_iter().map(|j| members[j]).collect();
            (k, front)
        })
        .collect()
}

/// Headline cases with a quality score and a cost (`cost` gives it and whether it is estimated).
pub(crate) fn cost_points<'a>(
    d: &'a ReportData,
    kind: ScoreKind,
    cost: impl Fn(&CaseView) -> Option<(f64, bool)>,
) -> Vec<CostPoint<'a>> {
    let several_targets = d.targets().len() > 1;
    d.headline()
        .into_iter()
        .filter_map(|c| {
            let score = kind.of(&c.quality)? * 100.0;
            let (cost, estimated) = cost(c)?;
            let name = if several_targets {
                format!("{} · {}", d.variant_of(c), c.case.target)
            } else {
                d.variant_of(c)
            };
            Some(CostPoint {
                case: c,
                name,
                cost,
                score,
                estimated,
                weight_bytes: c.case.model.weight_bytes as f64,
            })
        })
        .collect()
}

pub fn quality_latency(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Quality against latency, Pareto front marked";
    let Some(kind) = d.score_kind() else {
        return omitted(
            TITLE,
            "no case has quality figures (accuracy or fidelity); the run scored no dataset",
        );
    };
    let points = cost_points(d, kind, |c| c.p50().map(|p| (p, false)));
    if points.is_empty() {
        return omitted(TITLE, "no measured case has a quality figure");
    }
    let caption = format!(
        "Each point is a variant on a target: {} against median latency (single-stream, else the smallest offline batch). The point's area grows with the variant's weight bytes. The dashed steps join each target's Pareto front: the variants no other variant beats on both latency and {}; they are named with a star.",
        kind.name(),
        kind.name()
    );
    let png = cost_chart(
        d,
        "quality-latency.png",
        TITLE,
        caption,
        &points,
        kind,
        "median latency p50 (ms",
    )?;
    Ok(Outcome::Drawn(vec![png]))
}

pub fn quality_energy(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Quality against energy per inference, Pareto front marked";
    let Some(kind) = d.score_kind() else {
        return omitted(
            TITLE,
            "no case has quality figures (accuracy or fidelity); the run scored no dataset",
        );
    };
    let points = cost_points(d, kind, |c| c.energy_mj());
    if points.is_empty() {
        return omitted(
            TITLE,
            "no case has both a quality figure and an energy figure",
        );
    }
    let any_est = points.iter().any(|p| p.estimated);
    let all_est = points.iter().all(|p| p.estimated);
    let title = if any_est {
        "Quality against energy per inference (hollow = ESTIMATED energy), Pareto front marked"
    } else {
        TITLE
    };
    let axis = if all_est {
        "ESTIMATED energy per inference, CPU time x TDP (mJ"
    } else if any_est {
        "energy per inference (mJ; hollow points estimated"
    } else {
        "measured energy per inference (mJ"
    };
    let caption = format!(
        "Each point is a variant on a target: {} against energy per inference of the same case as the latency chart. The point's area grows with weight bytes; the dashed steps join each target's Pareto front (named with a star).{}",
        kind.name(),
        if any_est {
            " Hollow points and names marked (est.) are estimates from CPU time x TDP (method estimate-tdp), not measurements: compare them with each other only."
        } else {
            ""
        }
    );
    let png = cost_chart(d, "quality-energy.png", title, caption, &points, kind, axis)?;
    Ok(Outcome::Drawn(vec![png]))
}

fn cost_chart(
    d: &ReportData,
    file: &str,
    title: &str,
    caption: String,
    points: &[CostPoint<'_>],
    kind: ScoreKind,
    x_desc: &str,
) -> Result<Chart, String> {
    let targets = d.targets();
    let fronts = fronts(points);
    let on_front: Vec<bool> = (0..points.len())
        .map(|i| fronts.iter().any(|(_, f)| f.contains(&i)))
        .collect();
    let x = ValueAxis::fit(points.iter().map(|p| p.cost), false, 0.25);
    let mut y = ValueAxis::fit(points.iter().map(|p| p.score), false, 0.08);
    y.log = false;
    if y.hi > 100.0 {
        y.hi = 100.0 + (y.hi - 100.0).min(3.0);
    }
    if y.hi - y.lo < 2.0 {
        let mid = (y.hi + y.lo) / 2.0;
        y = ValueAxis::linear(mid - 1.5, mid + 1.5);
    }
    let max_wb = points.iter().map(|p| p.weight_bytes).fold(0.0, f64::max);
    let radius = |wb: f64| {
        if max_wb > 0.0 {
            6 + (16.0 * (wb / max_wb).sqrt()) as i32
        } else {
            8
        }
    };
    let mut legend: Vec<Entry> = Vec::new();
    for t in &targets {
        if points.iter().any(|p| &p.case.case.target == t) {
            let c = color(targets.iter().position(|x| x == t).unwrap_or(0));
            legend.push(entry(Swatch::Dot(c), format!("variant on {t}")));
        }
    }
    legend.push(entry(Swatch::Line(GREY), "Pareto front (★ members)"));
    if points.iter().any(|p| p.estimated) {
        legend.push(entry(
            Swatch::Hollow(INK),
            "ESTIMATED energy (estimate-tdp)",
        ));
    }
    if max_wb > 0.0 {
        legend.push(entry(
            Swatch::Dot(GREY),
            format!("area ∝ weight bytes (largest {})", format::bytes(max_wb)),
        ));
    }
    let height = 760 + legend_height(&legend);
    let unnamed = std::cell::Cell::new(0);
    let mut drawn = chart(file, title, caption, height, |root| {
        let body = frame(root, title, &legend)?;
        let mut ch = ChartBuilder::on(&body)
            .margin(20)
            .margin_right(40)
            .x_label_area_size(56)
            .y_label_area_size(value_label_area(&y))
            .build_cartesian_2d(x.clone(), y.clone())?;
        axes(
            root,
            &mut ch,
            Some(&format!("{x_desc}{})", x.scale_note())),
            Some(kind.axis_label()),
            (true, true),
        )?;
        for (_, front) in &fronts {
            if front.is_empty() {
                continue;
            }
            let col = color(
                targets
                    .iter()
                    .position(|t| *t == points[front[0]].case.case.target)
                    .unwrap_or(0),
            );
            let mut path = Vec::new();
            for (k, &i) in front.iter().enumerate() {
                if k > 0 {
                    path.push((points[i].cost, points[front[k - 1]].score));
                }
                path.push((points[i].cost, points[i].score));
            }
            ch.draw_series(DashedLineSeries::new(path, 8, 5, col.stroke_width(2)))?;
        }
        for p in points {
            let col = color(
                targets
                    .iter()
                    .position(|t| *t == p.case.case.target)
                    .unwrap_or(0),
            );
            let r = radius(p.weight_bytes);
            if p.estimated {
                ch.draw_series([Circle::new((p.cost, p.score), r, col.stroke_width(3))])?;
            } else {
                ch.draw_series([Circle::new((p.cost, p.score), r, col.mix(0.7).filled())])?;
                ch.draw_series([Circle::new((p.cost, p.score), r, col.stroke_width(1))])?;
            }
        }
        // Names: Pareto members first, so theirs get the best spots.
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| !on_front[i]);
        let labels: Vec<PointLabel> = order
            .iter()
            .map(|&i| {
                let p = &points[i];
                let mut name = p.name.clone();
                if p.estimated {
                    name.push_str(" (est.)");
                }
                let (text, st) = if on_front[i] {
                    (format!("★ {name}"), style(LABEL_SIZE))
                } else {
                    (name, style(LABEL_SIZE - 1).color(GREY))
                };
                PointLabel {
                    center: ch.backend_coord(&(p.cost, p.score)),
                    radius: radius(p.weight_bytes),
                    text,
                    style: st,
                }
            })
            .collect();
        let (xr, yr) = ch.plotting_area().get_pixel_range();
        unnamed.set(draw_labels(
            root,
            &labels,
            (xr.start, yr.start, xr.end, yr.end),
        )?);
        Ok(())
    })?;
    drawn.caption.push_str(&unnamed_note(unnamed.get()));
    Ok(drawn)
}

/// Weight bytes, compression rate and parameter counts of one variant.
pub(crate) struct SizeRow {
    pub name: String,
    pub weight_bytes: f64,
    pub compression: Option<f64>,
    pub params: f64,
    pub params_nonzero: Option<f64>,
}

/// One row per (run, variant): sizes from its first case with weights, compression from the
/// run file or else against the model's `baseline` variant in the same run.
pub(crate) fn size_rows(d: &ReportData) -> Vec<SizeRow> {
    d.variants()
        .into_iter()
        .filter_map(|(run, variant)| {
            let c = d.cases.iter().find(|c| {
                c.run == run && c.variant() == variant && c.case.model.weight_bytes > 0
            })?;
            let wb = c.case.model.weight_bytes as f64;
            let baseline = d.cases.iter().find(|b| {
                b.run == run
                    && b.case.model_name == c.case.model_name
                    && b.case.variant == "baseline"
                    && b.case.model.weight_bytes > 0
            });
            let compression = c
                .quality
                .compression_rate
                .or_else(|| baseline.map(|b| b.case.model.weight_bytes as f64 / wb));
            Some(SizeRow {
                name: d.tag(&variant, run),
                weight_bytes: wb,
                compression,
                params: c.case.model.params as f64,
                params_nonzero: c.quality.params_nonzero.map(|n| n as f64),
            })
        })
        .collect()
}

pub fn size(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Model size: weight bytes and compression, parameters total and non-zero";
    let rows = size_rows(d);
    if rows.is_empty() {
        return omitted(TITLE, "no measured case recorded its weight bytes");
    }
    let labels: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let any_nonzero = rows.iter().any(|r| r.params_nonzero.is_some());
    let mut legend = vec![
        entry(
            Swatch::Bar(color(0)),
            "weight bytes in memory (× compression vs baseline)",
        ),
        entry(Swatch::Bar(tint(color(5), 0.45)), "parameters, total"),
    ];
    if any_nonzero {
        legend.push(entry(Swatch::Bar(color(3)), "parameters, non-zero"));
    }
    let height = height_for(rows.len(), 46, &legend, 400);
    let caption = format!(
        "Left: bytes of each variant's weights in memory at their dtype, with the compression rate (baseline bytes / variant bytes) beside it. Right: weight elements, total{}.",
        if any_nonzero {
            " and not exactly zero (pruning shows here)"
        } else {
            "; this run has no non-zero counts (they come with pruned variants)"
        }
    );
    let png = chart("size.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let (w, _) = body.dim_in_pixel();
        let (left, right) = body.split_horizontally(w * 55 / 100);
        let n = rows.len();
        let unit = if rows.iter().any(|r| r.weight_bytes >= 1024.0 * 1024.0) {
            (1024.0 * 1024.0, "MiB")
        } else {
            (1024.0, "KiB")
        };
        let xb = ValueAxis::fit(rows.iter().map(|r| r.weight_bytes / unit.0), true, 0.35);
        let mut ch = ChartBuilder::on(&left)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(label_area(&labels))
            .build_cartesian_2d(xb.clone(), rows_axis(&labels))?;
        axes(
            root,
            &mut ch,
            Some(&format!("weight bytes ({}{})", unit.1, xb.scale_note())),
            Some("variant"),
            (true, false),
        )?;
        for (i, r) in rows.iter().enumerate() {
            let y = row_y(i, n);
            let v = r.weight_bytes / unit.0;
            ch.draw_series([Rectangle::new(
                [(xb.lo, y - 0.3), (v, y + 0.3)],
                color(0).filled(),
            )])?;
            let mut s = format::bytes(r.weight_bytes);
            if let Some(c) = r.compression {
                s.push_str(&format!(" · ×{c:.2}"));
            }
            annotate(
                root,
                &ch,
                (v, y),
                (8, 0),
                &s,
                style(LABEL_SIZE - 1).at(HPos::Left, VPos::Center),
            )?;
        }
        let xp = ValueAxis::fit(rows.iter().map(|r| r.params), true, 0.3);
        let empty: Vec<String> = vec![String::new(); n];
        let mut ch = ChartBuilder::on(&right)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(10)
            .build_cartesian_2d(xp.clone(), CategoryAxis::new(empty))?;
        axes(
            root,
            &mut ch,
            Some(&format!("parameters (weight elements{})", xp.scale_note())),
            None,
            (true, false),
        )?;
        for (i, r) in rows.iter().enumerate() {
            let y = row_y(i, n);
            let total_y = if r.params_nonzero.is_some() {
                y + 0.02
            } else {
                y - 0.3
            };
            ch.draw_series([Rectangle::new(
                [(xp.lo, total_y), (r.params, y + 0.3)],
                tint(color(5), 0.45).filled(),
            )])?;
            let mut s = format::num(r.params);
            if let Some(nz) = r.params_nonzero {
                ch.draw_series([Rectangle::new(
                    [(xp.lo, y - 0.3), (nz.max(xp.lo), y - 0.02)],
                    color(3).filled(),
                )])?;
                if r.params > 0.0 {
                    s.push_str(&format!(" · {} non-zero", format::pct(nz / r.params)));
                }
            }
            annotate(
                root,
                &ch,
                (r.params, y),
                (8, 0),
                &s,
                style(LABEL_SIZE - 1).at(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
