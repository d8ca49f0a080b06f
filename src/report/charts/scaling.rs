//! Speed-up against CPU thread count, when a target was measured at several counts.

use plotters::prelude::*;

use super::super::axis::ValueAxis;
use super::super::data::ReportData;
use super::*;
use crate::schema::Scenario;

/// A scaling line: its name and (threads, speed-up over the fewest threads) points.
pub(crate) struct ScalingLine {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One line per (run, variant, target without its thread count, scenario, batch) measured at
/// two or more thread counts. Speed-up = p50 at the fewest threads / p50.
pub(crate) fn scaling_lines(d: &ReportData) -> Vec<ScalingLine> {
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    // Server latency depends on the offered load, not only on threads: left out.
    for c in d
        .cases
        .iter()
        .filter(|c| c.measured() && c.case.scenario != Scenario::Server)
    {
        let Some(p50) = c.p50() else { continue };
        let scenario = if c.case.scenario == Scenario::SingleStream {
            "single-stream".to_string()
        } else {
            format!("{} b{}", c.case.scenario, c.case.batch_size)
        };
        let name = format!("{} · {} · {scenario}", d.variant_of(c), c.target_base());
        let point = (c.case.threads as f64, p50);
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => g.1.push(point),
            None => groups.push((name, vec![point])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(name, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts.dedup_by(|a, b| a.0 == b.0);
            if pts.len() < 2 {
                return None;
            }
            let base = pts[0].1;
            Some(ScalingLine {
                name,
                points: pts.iter().map(|&(t, p)| (t, base / p)).collect(),
            })
        })
        .collect()
}

pub fn scaling(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Thread scaling: speed-up of p50 latency over the fewest threads";
    let lines = scaling_lines(d);
    if lines.is_empty() {
        return omitted(
            TITLE,
            "every target was measured at one thread count only (set `threads = [1, 2, ...]`)",
        );
    }
    let mut threads: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    threads.sort_by(f64::total_cmp);
    threads.dedup();
    let (tmin, tmax) = (threads[0], threads[threads.len() - 1]);
    let x = ValueAxis {
        lo: (tmin - 0.25 * (tmax - tmin)).max(0.0),
        hi: tmax + 0.25 * (tmax - tmin),
        log: false,
        ticks: Some(threads.clone()),
        bytes: false,
    };
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(tmax / tmin, f64::max);
    let y = ValueAxis::linear(0.0, top * 1.12);
    let mut legend: Vec<Entry> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| entry(Swatch::Line(color(i)), l.name.clone()))
        .collect();
    legend.push(entry(
        Swatch::Line(GREY),
        "ideal: speed-up = threads / fewest threads",
    ));
    let height = 720 + legend_height(&legend);
    let caption = "For each variant, scenario and batch measured on the same target at several thread counts: the median latency at the fewest threads divided by the median at each count. The grey dashed line is perfect linear scaling; below 1 more threads made it slower.".to_string();
    let png = chart("scaling.png", TITLE, caption, height, |root| {
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
            Some("CPU threads"),
            Some("speed-up of p50 (×)"),
            (true, true),
        )?;
        ch.draw_series(DashedLineSeries::new(
            vec![(tmin, 1.0), (tmax, tmax / tmin)],
            10,
            6,
            GREY.stroke_width(2),
        ))?;
        ch.draw_series([PathElement::new(
            vec![(x.lo, 1.0), (x.hi, 1.0)],
            RGBColor(160, 160, 160).stroke_width(1),
        )])?;
        for (i, l) in lines.iter().enumerate() {
            let col = color(i);
            ch.draw_series(LineSeries::new(
                l.points.iter().copied(),
                col.stroke_width(3),
            ))?;
            ch.draw_series(l.points.iter().map(|&p| Circle::new(p, 5, col.filled())))?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
