//! Quality against speed for language models: perplexity (and, when scored, mean KL divergence
//! from the baseline) against tokens/s of one test, with each target's Pareto front.

use plotters::prelude::*;

use super::llm::{measured, target_index};
use super::text::style;

use super::super::axis::ValueAxis;
use super::super::data::{pareto_front, ReportData};
use super::super::format;
use super::*;
use crate::schema::Scenario;

/// One variant on one target: its speed on the chosen test and its quality figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpeedQuality {
    pub name: String,
    pub run: usize,
    pub target: String,
    pub tokens_per_s: f64,
    pub tokens_per_s_ci: Option<[f64; 2]>,
    pub perplexity: f64,
    pub perplexity_uncertainty: f64,
    /// Mean KL divergence from the baseline and its uncertainty; `Some([0, 0])` for the
    /// baseline itself, absent when not scored.
    pub kld: Option<[f64; 2]>,
}

/// The test whose speed the chart shows: the first decode test of the run (generation speed
/// is what quantization is for), else the first generate test, else the first prefill test.
pub(crate) fn speed_test(d: &ReportData) -> Option<(Scenario, String)> {
    [Scenario::Decode, Scenario::Generate, Scenario::Prefill]
        .into_iter()
        .find_map(|s| {
            d.cases
                .iter()
                .filter(|c| c.case.scenario == s && c.case.llm_quality.is_some())
                .find_map(|c| measured(c).map(|l| (s, l.test.clone())))
        })
}

/// One point per case of `test` with a quality figure.
pub(crate) fn speed_quality(d: &ReportData, scenario: Scenario, test: &str) -> Vec<SpeedQuality> {
    let several_targets = d.targets().len() > 1;
    d.cases
        .iter()
        .filter(|c| c.case.scenario == scenario)
        .filter_map(|c| {
            let l = measured(c).filter(|l| l.test == test)?;
            let q = c.case.llm_quality.as_ref()?;
            let rate = l.tokens_per_s.as_ref()?;
            let kld = match &q.kld {
                Some(k) => Some([k.mean, k.uncertainty]),
                None if c.case.variant == "baseline" => Some([0.0, 0.0]),
                None => None,
            };
            Some(SpeedQuality {
                name: if several_targets {
                    format!("{} · {}", d.variant_of(c), c.case.target)
                } else {
                    d.variant_of(c)
                },
                run: c.run,
                target: c.case.target.clone(),
                tokens_per_s: rate.mean,
                tokens_per_s_ci: rate.mean_ci,
                perplexity: q.perplexity,
                perplexity_uncertainty: q.perplexity_uncertainty,
                kld,
            })
        })
        .collect()
}

/// Indices of the points on the Pareto front when speed (`.0`) is to be high and the quality
/// loss (`.1`: perplexity, KL divergence) low, fastest first.
pub(crate) fn speed_front(points: &[(f64, f64)]) -> Vec<usize> {
    let flipped: Vec<(f64, f64)> = points.iter().map(|&(s, q)| (-s, -q)).collect();
    pareto_front(&flipped)
}

/// What a quality chart plots: its file, title, axis and how to read a point's figure.
struct Metric {
    file: &'static str,
    title: &'static str,
    axis: &'static str,
    what: &'static str,
    of: fn(&SpeedQuality) -> Option<[f64; 2]>,
}

pub fn quality_speed(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "LLM quality against tokens/s, Pareto front marked";
    if !super::llm::any_generation(d) {
        return Ok(Outcome::Drawn(Vec::new()));
    }
    let Some((scenario, test)) = speed_test(d) else {
        return omitted(
            TITLE,
            "no measured prefill, decode or generate case has quality figures (the model has no `quality` token file)",
        );
    };
    let points = speed_quality(d, scenario, &test);
    let metrics = [
        Metric {
            file: "llm-quality-ppl.png",
            title: "LLM perplexity against tokens/s, Pareto front marked",
            axis: "perplexity (lower is better)",
            what: "perplexity on the token ids of the quality file (llama-perplexity's method; whiskers: ± its uncertainty)",
            of: |p| Some([p.perplexity, p.perplexity_uncertainty]),
        },
        Metric {
            file: "llm-quality-kld.png",
            title: "LLM KL divergence from the baseline against tokens/s, Pareto front marked",
            axis: "mean KL divergence from the baseline (nats, lower is better)",
            what: "mean KL divergence of the variant's next-token distribution from the baseline's on the same positions (0 for the baseline; whiskers: ± its standard error)",
            of: |p| p.kld,
        },
    ];
    let mut charts = Vec::new();
    for m in &metrics {
        let pts: Vec<&SpeedQuality> = points.iter().filter(|p| (m.of)(p).is_some()).collect();
        // KL divergence needs a variant beside the baseline to say anything.
        if pts.len() >= 2 || (m.file == "llm-quality-ppl.png" && !pts.is_empty()) {
            charts.push(metric_chart(d, m, &pts, scenario, &test)?);
        }
    }
    Ok(Outcome::Drawn(charts))
}

/// Each (run, target)'s Pareto front (indices into `points`, slowest first) and whether each
/// point is on one.
fn fronts_of(
    points: &[&SpeedQuality],
    value: impl Fn(&SpeedQuality) -> [f64; 2],
) -> (Vec<Vec<usize>>, Vec<bool>) {
    let mut keys: Vec<(usize, &str)> = Vec::new();
    for p in points {
        if !keys.contains(&(p.run, p.target.as_str())) {
            keys.push((p.run, p.target.as_str()));
        }
    }
    let mut on_front = vec![false; points.len()];
    let mut fronts: Vec<Vec<usize>> = Vec::new();
    for k in &keys {
        let members: Vec<usize> = (0..points.len())
            .filter(|&i| (points[i].run, points[i].target.as_str()) == *k)
            .collect();
        let xy: Vec<(f64, f64)> = members
            .iter()
            .map(|&i| (points[i].tokens_per_s, value(points[i])[0]))
            .collect();
        let mut front: Vec<usize> = speed_front(&xy).into_iter().map(|j| members[j]).collect();
        front.sort_by(|&a, &b| points[a].tokens_per_s.total_cmp(&points[b].tokens_per_s));
        for &i in &front {
            on_front[i] = true;
        }
        fronts.push(front);
    }
    (fronts, on_front)
}

fn metric_chart(
    d: &ReportData,
    m: &Metric,
    points: &[&SpeedQuality],
    scenario: Scenario,
    test: &str,
) -> Result<Chart, String> {
    let value = |p: &SpeedQuality| (m.of)(p).expect("filtered");
    let (fronts, on_front) = fronts_of(points, value);
    let x = ValueAxis::fit(
        points.iter().flat_map(|p| {
            let ci = p.tokens_per_s_ci.unwrap_or([p.tokens_per_s; 2]);
            [p.tokens_per_s, ci[0], ci[1]]
        }),
        false,
        0.25,
    );
    let ys: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            let [v, u] = value(p);
            [v - u, v + u]
        })
        .collect();
    let top = ys.iter().copied().fold(0.0, f64::max);
    let bottom = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let span = (top - bottom).max(top.abs() * 0.02).max(1e-9);
    let lo = if m.file == "llm-quality-kld.png" {
        0.0
    } else {
        (bottom - 0.15 * span).max(0.0)
    };
    let y = ValueAxis::linear(lo, top + 0.15 * span);
    let mut legend: Vec<Entry> = d
        .targets()
        .iter()
        .filter(|t| points.iter().any(|p| &p.target == *t))
        .map(|t| {
            entry(
                Swatch::Dot(color(target_index(d, t))),
                format!("variant on {t}"),
            )
        })
        .collect();
    legend.push(entry(Swatch::Line(GREY), "Pareto front (★ members)"));
    legend.push(entry(Swatch::Whisker, "t/s: 95% CI of the mean"));
    let height = 720 + legend_height(&legend);
    let caption = format!(
        "Each point is a variant on a target: {} against the mean tokens per second of its `{test}` {scenario} case (whiskers: Student-t 95% CI of the mean). The quality figure is scored once per variant outside any timed loop, so it is the same on every target. The dashed steps join each target's Pareto front: the variants no other variant beats on both speed and {}; they are named with a star.{}",
        m.what,
        if m.file == "llm-quality-kld.png" { "divergence" } else { "perplexity" },
        if x.log { " The speed axis is logarithmic." } else { "" },
    );
    let unnamed = std::cell::Cell::new(0);
    let mut drawn = chart(m.file, m.title, caption, height, |root| {
        let body = frame(root, m.title, &legend)?;
        let mut ch = ChartBuilder::on(&body)
            .margin(20)
            .margin_right(40)
            .x_label_area_size(56)
            .y_label_area_size(value_label_area(&y))
            .build_cartesian_2d(x.clone(), y.clone())?;
        axes(
            root,
            &mut ch,
            Some(&format!(
                "{scenario} {test}: tokens per second{}",
                x.scale_note()
            )),
            Some(m.axis),
            (true, true),
        )?;
        for front in fronts.iter().filter(|f| !f.is_empty()) {
            let col = color(target_index(d, &points[front[0]].target));
            let mut path = Vec::new();
            for (k, &i) in front.iter().enumerate() {
                let v = value(points[i])[0];
                if k > 0 {
                    path.push((points[front[k - 1]].tokens_per_s, v));
                }
                path.push((points[i].tokens_per_s, v));
            }
            ch.draw_series(DashedLineSeries::new(path, 8, 5, col.stroke_width(2)))?;
        }
        for p in points {
            let col = color(target_index(d, &p.target));
            let [v, u] = value(p);
            let ink = INK.stroke_width(1);
            if let Some([lo, hi]) = p.tokens_per_s_ci {
                ch.draw_series([PathElement::new(vec![(lo, v), (hi, v)], ink)])?;
            }
            if u > 0.0 {
                let t = p.tokens_per_s;
                ch.draw_series([PathElement::new(vec![(t, v - u), (t, v + u)], ink)])?;
            }
            ch.draw_series([Circle::new((p.tokens_per_s, v), 8, col.mix(0.7).filled())])?;
            ch.draw_series([Circle::new((p.tokens_per_s, v), 8, col.stroke_width(1))])?;
        }
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| !on_front[i]);
        let labels: Vec<PointLabel> = order
            .iter()
            .map(|&i| {
                let p = points[i];
                let v = value(p)[0];
                let text = format!("{} ({})", p.name, format::num(v));
                let (text, st) = if on_front[i] {
                    (format!("★ {text}"), style(LABEL_SIZE))
                } else {
                    (text, style(LABEL_SIZE - 1).color(GREY))
                };
                PointLabel {
                    center: ch.backend_coord(&(p.tokens_per_s, v)),
                    radius: 8,
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
