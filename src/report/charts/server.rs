//! Latency percentiles against offered load (server scenario): every server run of a run file,
//! from `target_qps` cases and from the probes of a max-QPS search.

use plotters::prelude::*;

use super::super::axis::ValueAxis;
use super::super::data::ReportData;
use super::*;

/// One server run: offered rate, p50, p99 and the p99's 95% CI, and whether it saturated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadPoint {
    pub offered_qps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p99_ci: [f64; 2],
    pub saturated: bool,
}

/// The server runs of one (run, variant, target, max_batch), by offered rate, and the p99
/// bound of its search if it had one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadSeries {
    pub name: String,
    pub points: Vec<LoadPoint>,
    pub bound_ms: Option<f64>,
}

pub(crate) fn load_series(d: &ReportData) -> Vec<LoadSeries> {
    let mut out: Vec<LoadSeries> = Vec::new();
    for c in &d.cases {
        let Some(s) = c.case.server() else { continue };
        let name = format!("{} · {} · b{}", d.variant_of(c), c.case.target, s.max_batch);
        let mut points = Vec::new();
        let mut bound = None;
        match &s.search {
            Some(search) => {
                bound = Some(search.p99_bound_ms);
                for p in &search.probes {
                    if let Some(l) = &p.latency_ms {
                        points.push(LoadPoint {
                            offered_qps: p.offered_qps,
                            p50: l.p50,
                            p99: l.p99,
                            p99_ci: l.p99_ci,
                            saturated: p.saturated,
                        });
                    }
                }
            }
            None => {
                if let Some(l) = c.case.latency_ms.as_ref().filter(|_| c.measured()) {
                    let l = &l.summary;
                    points.push(LoadPoint {
                        offered_qps: s.offered_qps,
                        p50: l.p50,
                        p99: l.p99,
                        p99_ci: l.p99_ci,
                        saturated: s.saturated,
                    });
                }
            }
        }
        let series = match out.iter_mut().find(|x| x.name == name) {
            Some(x) => x,
            None => {
                out.push(LoadSeries {
                    name,
                    points: Vec::new(),
                    bound_ms: None,
                });
                out.last_mut().expect("just pushed")
            }
        };
        series.points.extend(points);
        series.bound_ms = series.bound_ms.or(bound);
    }
    for s in &mut out {
        s.points
            .sort_by(|a, b| a.offered_qps.total_cmp(&b.offered_qps));
    }
    out.retain(|s| !s.points.is_empty());
    out
}

pub fn server_load(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Server: latency percentiles against offered load";
    // Runs without a server scenario: the chart does not apply, and is not listed as missing.
    if d.cases.iter().all(|c| c.case.server().is_none()) {
        return Ok(Outcome::Drawn(Vec::new()));
    }
    let series = load_series(d);
    if series.is_empty() {
        return omitted(
            TITLE,
            "no server case was measured (all failed or were skipped)",
        );
    }
    let rates: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.offered_qps))
        .collect();
    let x = ValueAxis::fit(rates.iter().copied(), true, 0.05);
    let bounds: Vec<f64> = series.iter().filter_map(|s| s.bound_ms).collect();
    let y = ValueAxis::fit(
        series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|p| [p.p50, p.p99, p.p99_ci[1]]))
            .chain(bounds.iter().copied()),
        false,
        0.05,
    );
    let mut legend: Vec<Entry> = series
        .iter()
        .enumerate()
        .map(|(i, s)| entry(Swatch::Line(color(i)), format!("{}: p99", s.name)))
        .collect();
    legend.push(entry(Swatch::Line(GREY), "thin line: p50 of the same runs"));
    legend.push(entry(Swatch::Whisker, "95% bootstrap CI of p99"));
    legend.push(entry(Swatch::Hollow(INK), "saturated run"));
    if !bounds.is_empty() {
        legend.push(entry(Swatch::Line(RED), "p99 bound of the max-QPS search"));
    }
    let height = 720 + legend_height(&legend);
    let caption = format!(
        "Each point is one server run (a target_qps case or a probe of a max-QPS search): queries arrive by a seeded Poisson process at the offered rate (x, the schedule's own queries per second) and a query's latency counts from its arrival, so queueing is included. Thick lines: p99 with its 95% bootstrap CI; thin lines: p50. Hollow points saturated: queries were dropped or left unserved at the drain deadline, or under 90% of the offered rate was served, so their latency is bounded by the run's length rather than the model.{}{}",
        if x.log { " The load axis is logarithmic." } else { "" },
        if y.log { " The latency axis is logarithmic." } else { "" },
    );
    let png = chart("server-load.png", TITLE, caption, height, |root| {
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
            Some(&format!("offered load (queries/s{})", x.scale_note())),
            Some(&format!("latency (ms{})", y.scale_note())),
            (true, true),
        )?;
        for &b in &bounds {
            ch.draw_series(DashedLineSeries::new(
                vec![(x.lo, b), (x.hi, b)],
                10,
                6,
                RED.stroke_width(2),
            ))?;
        }
        for (i, s) in series.iter().enumerate() {
            let col = color(i);
            let p99: Vec<(f64, f64)> = s.points.iter().map(|p| (p.offered_qps, p.p99)).collect();
            let p50: Vec<(f64, f64)> = s.points.iter().map(|p| (p.offered_qps, p.p50)).collect();
            ch.draw_series(LineSeries::new(p50.iter().copied(), col.stroke_width(1)))?;
            ch.draw_series(LineSeries::new(p99.iter().copied(), col.stroke_width(3)))?;
            for p in &s.points {
                ch.draw_series([PathElement::new(
                    vec![(p.offered_qps, p.p99_ci[0]), (p.offered_qps, p.p99_ci[1])],
                    INK.stroke_width(1),
                )])?;
                let style = if p.saturated {
                    col.stroke_width(2)
                } else {
                    col.filled()
                };
                ch.draw_series([Circle::new((p.offered_qps, p.p99), 5, style)])?;
                ch.draw_series([Circle::new((p.offered_qps, p.p50), 3, style)])?;
            }
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
