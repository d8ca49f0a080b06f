//! TTFT and TPOT against offered load (llm_server): p50 and p99 of every server run, from
//! `target_qps` cases and from the probes of a `find_max_qps` search, side by side.

use plotters::prelude::*;

use super::llm::server_record;
use super::DrawResult;

use super::super::axis::ValueAxis;
use super::super::data::ReportData;
use super::super::format;
use super::*;
use crate::schema::Summary;

/// One server run: offered requests/s, TTFT and TPOT (p50, p99) and whether it saturated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LlmLoadPoint {
    pub offered_qps: f64,
    pub ttft: [f64; 2],
    /// Absent with one output token (no token after the first).
    pub tpot: Option<[f64; 2]>,
    pub saturated: bool,
}

/// The server runs of one (run, variant, target, request shape), by offered rate, with the
/// search's bounds and result when it had one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LlmLoadSeries {
    pub name: String,
    pub points: Vec<LlmLoadPoint>,
    /// `find_max_qps` bounds: TTFT p99 and TPOT p99, ms.
    pub bounds: Option<[f64; 2]>,
    pub max_qps: Option<f64>,
}

fn percentiles(s: &Summary) -> [f64; 2] {
    [s.p50, s.p99]
}

pub(crate) fn llm_load_series(d: &ReportData) -> Vec<LlmLoadSeries> {
    let mut out: Vec<LlmLoadSeries> = Vec::new();
    for c in &d.cases {
        let Some(s) = server_record(c) else { continue };
        let name = format!(
            "{} · {} · pp{}+tg{}",
            d.variant_of(c),
            c.case.target,
            s.prompt_tokens,
            s.output_tokens
        );
        let mut points = Vec::new();
        let (mut bounds, mut max_qps) = (None, None);
        match &s.search {
            Some(search) => {
                bounds = Some([search.ttft_p99_bound_ms, search.tpot_p99_bound_ms]);
                max_qps = search.max_qps;
                for p in &search.probes {
                    if let Some(t) = &p.ttft_ms {
                        points.push(LlmLoadPoint {
                            offered_qps: p.offered_qps,
                            ttft: percentiles(t),
                            tpot: p.tpot_ms.as_ref().map(percentiles),
                            saturated: p.saturated,
                        });
                    }
                }
            }
            None => {
                if let Some(t) = &s.ttft_ms {
                    points.push(LlmLoadPoint {
                        offered_qps: s.offered_qps,
                        ttft: percentiles(t),
                        tpot: s.tpot_ms.as_ref().map(percentiles),
                        saturated: s.saturated,
                    });
                }
            }
        }
        let series = match out.iter_mut().find(|x| x.name == name) {
            Some(x) => x,
            None => {
                out.push(LlmLoadSeries {
                    name,
                    points: Vec::new(),
                    bounds: None,
                    max_qps: None,
                });
                out.last_mut().expect("just pushed")
            }
        };
        series.points.extend(points);
        series.bounds = series.bounds.or(bounds);
        series.max_qps = series.max_qps.or(max_qps);
    }
    for s in &mut out {
        s.points
            .sort_by(|a, b| a.offered_qps.total_cmp(&b.offered_qps));
    }
    out.retain(|s| !s.points.is_empty());
    out
}

pub fn server_load(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "LLM server: TTFT and TPOT against offered load";
    if d.cases.iter().all(|c| server_record(c).is_none()) {
        return Ok(Outcome::Drawn(Vec::new()));
    }
    let series = llm_load_series(d);
    if series.is_empty() {
        return omitted(
            TITLE,
            "no llm_server run served a request (all failed or were skipped)",
        );
    }
    let x = ValueAxis::fit(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.offered_qps))
            .chain(series.iter().filter_map(|s| s.max_qps)),
        true,
        0.05,
    );
    let mut legend: Vec<Entry> = series
        .iter()
        .enumerate()
        .map(|(i, s)| entry(Swatch::Line(color(i)), format!("{}: p99", s.name)))
        .collect();
    legend.push(entry(Swatch::Line(GREY), "thin line: p50 of the same runs"));
    legend.push(entry(Swatch::Hollow(INK), "saturated run"));
    if series.iter().any(|s| s.bounds.is_some()) {
        legend.push(entry(Swatch::Line(RED), "p99 bound of find_max_qps"));
    }
    if series.iter().any(|s| s.max_qps.is_some()) {
        legend.push(entry(
            Swatch::Line(INK),
            "dotted: highest passing rate (find_max_qps)",
        ));
    }
    let results: Vec<String> = series
        .iter()
        .filter_map(|s| {
            s.max_qps
                .map(|q| format!("{}: {} requests/s", s.name, format::num(q)))
        })
        .collect();
    let height = 640 + legend_height(&legend);
    let caption = format!(
        "Each point is one llm_server run (a target_qps case or a probe of a find_max_qps search): requests (a prompt of N tokens, M tokens out) arrive by a seeded Poisson process at the offered rate (x, the schedule's own requests per second) and are served one sequence at a time. TTFT (left) counts from arrival to the first token, so queueing is included; TPOT (right) is (end-to-end - TTFT) / (M - 1). Thick lines: p99; thin lines: p50. Hollow points saturated: requests were dropped or unserved, or under 90% of the offered rate was served.{}{}",
        if results.is_empty() {
            String::new()
        } else {
            format!(" Highest rate meeting both p99 bounds with nothing dropped: {}.", results.join("; "))
        },
        if x.log { " The load axis is logarithmic." } else { "" },
    );
    let png = chart("llm-server-load.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let (w, _) = body.dim_in_pixel();
        let (left, right) = body.split_horizontally(w / 2);
        panel(
            root,
            &left,
            &series,
            &x,
            "TTFT from arrival",
            |p| Some(p.ttft),
            0,
        )?;
        panel(root, &right, &series, &x, "TPOT", |p| p.tpot, 1)?;
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}

/// One side: a figure's p50 and p99 against offered load, the bounds and the search's result.
fn panel(
    root: &Area<'_>,
    area: &Area<'_>,
    series: &[LlmLoadSeries],
    x: &ValueAxis,
    what: &str,
    figure: impl Fn(&LlmLoadPoint) -> Option<[f64; 2]>,
    bound: usize,
) -> DrawResult {
    let bounds: Vec<f64> = series
        .iter()
        .filter_map(|s| s.bounds)
        .map(|b| b[bound])
        .collect();
    let y = ValueAxis::fit(
        series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(&figure).flatten())
            .chain(bounds.iter().copied()),
        false,
        0.05,
    );
    let mut ch = ChartBuilder::on(area)
        .margin(16)
        .margin_right(24)
        .x_label_area_size(56)
        .y_label_area_size(value_label_area(&y))
        .build_cartesian_2d(x.clone(), y.clone())?;
    axes(
        root,
        &mut ch,
        Some(&format!("offered load (requests/s{})", x.scale_note())),
        Some(&format!("{what} (ms{})", y.scale_note())),
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
        if let Some(q) = s.max_qps {
            ch.draw_series(DashedLineSeries::new(
                vec![(q, y.lo), (q, y.hi)],
                3,
                4,
                col.stroke_width(2),
            ))?;
        }
        let pts: Vec<(f64, [f64; 2], bool)> = s
            .points
            .iter()
            .filter_map(|p| figure(p).map(|f| (p.offered_qps, f, p.saturated)))
            .collect();
        let p50 = pts.iter().map(|(q, f, _)| (*q, f[0]));
        let p99 = pts.iter().map(|(q, f, _)| (*q, f[1]));
        ch.draw_series(LineSeries::new(p50, col.stroke_width(1)))?;
        ch.draw_series(LineSeries::new(p99, col.stroke_width(3)))?;
        for (q, f, saturated) in &pts {
            let style = if *saturated {
                col.stroke_width(2)
            } else {
                col.filled()
            };
            ch.draw_series([Circle::new((*q, f[1]), 5, style)])?;
            ch.draw_series([Circle::new((*q, f[0]), 3, style)])?;
        }
    }
    Ok(())
}
