//! Radar: each variant's speed, throughput, size, energy and accuracy, normalised so that the
//! best variant on each axis scores 1.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;

use super::super::data::{pareto_front, CaseView, ReportData};
use super::super::format;
use super::*;

/// One spoke: its name, the reference (best) value in words, each variant's normalised score
/// (None: no figure).
pub(crate) struct Spoke {
    pub name: String,
    pub best: String,
    pub values: Vec<Option<f64>>,
}

/// Normalised figures: `higher_better` figures divide by the best, others divide the best.
fn normalise(raw: &[Option<f64>], higher_better: bool) -> (Vec<Option<f64>>, Option<f64>) {
    let vals = raw.iter().flatten().copied().filter(|v| *v > 0.0);
    let best = if higher_better {
        vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    } else {
        vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))
    };
    let out = raw
        .iter()
        .map(|v| {
            let (v, b) = (v.filter(|v| *v > 0.0)?, best?);
            Some(if higher_better { v / b } else { b / v })
        })
        .collect();
    (out, best)
}

/// What the radar shows: the variants' names, the spokes, and the variants left out.
pub(crate) struct RadarData {
    pub names: Vec<String>,
    pub spokes: Vec<Spoke>,
    /// Variants of the chosen targets that are neither on their run's Pareto front nor a
    /// baseline: a dozen overlapping polygons would hide every shape.
    pub left_out: Vec<String>,
}

/// Of `picked`, each run's Pareto members (quality against median latency; without quality
/// figures, weight bytes against median latency) and its baselines, in order; and the rest.
fn front_and_baselines<'a>(
    d: &ReportData,
    picked: Vec<&'a CaseView>,
) -> (Vec<&'a CaseView>, Vec<&'a CaseView>) {
    let kind = d.score_kind();
    let mut keep = vec![false; picked.len()];
    for run in 0..d.runs.len() {
        let idx: Vec<usize> = (0..picked.len())
            .filter(|&i| picked[i].run == run)
            .collect();
        let points: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| {
                let c = picked[i];
                let merit = match kind {
                    Some(k) => k.of(&c.quality).unwrap_or(f64::NAN),
                    None => -(c.case.model.weight_bytes as f64),
                };
                (c.p50().unwrap_or(f64::NAN), merit)
            })
            .collect();
        for j in pareto_front(&points) {
            keep[idx[j]] = true;
        }
        for &i in &idx {
            keep[i] |= picked[i].case.variant == "baseline";
        }
    }
    let (mut shown, mut rest) = (Vec::new(), Vec::new());
    for (c, k) in picked.into_iter().zip(keep) {
        if k {
            shown.push(c);
        } else {
            rest.push(c);
        }
    }
    (shown, rest)
}

/// The variants (names) and spokes of the radar; each run contributes its Pareto members and
/// baselines on the target where most of its variants were measured.
pub(crate) fn radar_data(d: &ReportData) -> RadarData {
    let headline = d.headline();
    let mut picked = Vec::new();
    for run in 0..d.runs.len() {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for c in headline.iter().filter(|c| c.run == run) {
            match counts.iter_mut().find(|t| t.0 == c.case.target) {
                Some(t) => t.1 += 1,
                None => counts.push((c.case.target.clone(), 1)),
            }
        }
        let Some(max) = counts.iter().map(|t| t.1).max() else {
            continue;
        };
        let target = counts
            .iter()
            .find(|t| t.1 == max)
            .expect("max exists")
            .0
            .clone();
        picked.extend(
            headline
                .iter()
                .filter(|c| c.run == run && c.case.target == target)
                .copied(),
        );
    }
    let label = |c: &CaseView| format!("{} · {}", d.variant_of(c), c.case.target);
    let (picked, rest) = front_and_baselines(d, picked);
    let left_out: Vec<String> = rest.into_iter().map(label).collect();
    let names: Vec<String> = picked.iter().map(|c| label(c)).collect();
    let mut spokes = Vec::new();
    let p50: Vec<Option<f64>> = picked.iter().map(|c| c.p50()).collect();
    let (v, best) = normalise(&p50, false);
    if let Some(b) = best {
        spokes.push(Spoke {
            name: "speed (1 / p50)".into(),
            best: format!("best p50 {} ms", format::ms(b)),
            values: v,
        });
    }
    let tput: Vec<Option<f64>> = picked
        .iter()
        .map(|h| {
            d.cases
                .iter()
                .filter(|c| {
                    c.run == h.run
                        && c.variant() == h.variant()
                        && c.case.target == h.case.target
                        && c.measured()
                })
                .filter_map(|c| c.case.throughput_per_s)
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
        })
        .collect();
    let (v, best) = normalise(&tput, true);
    if let Some(b) = best {
        spokes.push(Spoke {
            name: "throughput".into(),
            best: format!("best {} samples/s", format::num(b)),
            values: v,
        });
    }
    let size: Vec<Option<f64>> = picked
        .iter()
        .map(|c| Some(c.case.model.weight_bytes as f64).filter(|b| *b > 0.0))
        .collect();
    let (v, best) = normalise(&size, false);
    if let Some(b) = best {
        spokes.push(Spoke {
            name: "size (1 / weight bytes)".into(),
            best: format!("smallest {}", format::bytes(b)),
            values: v,
        });
    }
    let energy: Vec<Option<f64>> = picked.iter().map(|c| c.energy_mj().map(|e| e.0)).collect();
    let estimated = picked.iter().any(|c| c.energy_mj().is_some_and(|e| e.1));
    let measured = picked.iter().any(|c| c.energy_mj().is_some_and(|e| !e.1));
    let (v, best) = normalise(&energy, false);
    if let Some(b) = best {
        spokes.push(Spoke {
            name: if estimated && measured {
                "energy (1 / mJ), partly ESTIMATED".into()
            } else if estimated {
                "energy (1 / mJ), ESTIMATED".into()
            } else {
                "energy (1 / mJ per inference)".into()
            },
            best: format!("lowest {} mJ/inference", format::mj(b)),
            values: v,
        });
    }
    if let Some(kind) = d.score_kind() {
        let score: Vec<Option<f64>> = picked.iter().map(|c| kind.of(&c.quality)).collect();
        let (v, best) = normalise(&score, true);
        if let Some(b) = best {
            spokes.push(Spoke {
                name: kind.name().to_string(),
                best: format!("best {}", format::pct(b)),
                values: v,
            });
        }
    }
    RadarData {
        names,
        spokes,
        left_out,
    }
}

pub fn radar(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Variants at a glance: normalised speed, throughput, size, energy, quality";
    let RadarData {
        names,
        spokes,
        left_out,
    } = radar_data(d);
    if names.len() < 2 {
        let why = if left_out.is_empty() {
            "needs at least two measured variants to compare".to_string()
        } else {
            format!(
                "needs at least two variants on the Pareto front or baselines; the others ({}) are dominated",
                left_out.join(", ")
            )
        };
        return omitted(TITLE, why);
    }
    if spokes.len() < 3 {
        return omitted(TITLE, "needs at least three figures per variant");
    }
    let missing = spokes.iter().any(|s| s.values.iter().any(|v| v.is_none()));
    let legend: Vec<Entry> = names
        .iter()
        .enumerate()
        .map(|(i, n)| entry(Swatch::Bar(color(i)), n.clone()))
        .collect();
    let caption = format!(
        "Each axis is scaled so that the best variant scores 1 (the outer ring) and the others their ratio to it: speed is best p50 / p50, throughput is the variant's highest samples/s over the best's, size is the smallest weight bytes / the variant's, energy is the lowest mJ per inference / the variant's{}, and quality is the variant's score over the best. Bigger is better on every axis. Each run is shown on the target where most of its variants were measured.{}",
        if spokes.iter().any(|s| s.name.contains("ESTIMATED")) {
            " (from ESTIMATED energy)"
        } else {
            ""
        },
        if missing { " A variant without a figure sits at 0 on that axis." } else { "" }
    ) + &left_out_note(&left_out, d.score_kind().is_some());
    let height = 880 + legend_height(&legend);
    let png = chart("radar.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let (w, h) = body.dim_in_pixel();
        let side = w.min(h);
        let (mx, my) = ((w - side) / 2, (h - side) / 2);
        let square = body.margin(my, my, mx, mx);
        let mut ch = ChartBuilder::on(&square)
            .margin(10)
            .build_cartesian_2d(-1.55f64..1.55f64, -1.45f64..1.45f64)?;
        let m = spokes.len();
        let angle =
            |k: usize| std::f64::consts::FRAC_PI_2 - k as f64 * std::f64::consts::TAU / m as f64;
        let at = |k: usize, r: f64| (r * angle(k).cos(), r * angle(k).sin());
        let grid = RGBColor(200, 200, 200);
        for ring in [0.25, 0.5, 0.75, 1.0] {
            let mut pts: Vec<(f64, f64)> = (0..m).map(|k| at(k, ring)).collect();
            pts.push(pts[0]);
            ch.draw_series([PathElement::new(
                pts,
                if ring == 1.0 {
                    GREY.stroke_width(2)
                } else {
                    grid.stroke_width(1)
                },
            )])?;
            let label = if ring == 1.0 {
                "1 = best".to_string()
            } else {
                format!("{ring}")
            };
            annotate(
                root,
                &ch,
                at(0, ring),
                (-14, 6),
                &label,
                style(LABEL_SIZE - 3).at(HPos::Right, VPos::Top).color(GREY),
            )?;
        }
        for (k, s) in spokes.iter().enumerate() {
            ch.draw_series([PathElement::new(
                vec![(0.0, 0.0), at(k, 1.0)],
                grid.stroke_width(1),
            )])?;
            let (x, y) = at(k, 1.1);
            let h = if x.abs() < 0.2 {
                HPos::Center
            } else if x > 0.0 {
                HPos::Left
            } else {
                HPos::Right
            };
            let v = if y < -0.2 { VPos::Top } else { VPos::Bottom };
            let (first, second) = if y < -0.2 { (0, 22) } else { (-20, 0) };
            annotate(
                root,
                &ch,
                (x, y),
                (0, first),
                &s.name,
                style(DESC_SIZE).at(h, v),
            )?;
            annotate(
                root,
                &ch,
                (x, y),
                (0, second),
                &s.best,
                style(LABEL_SIZE - 2).at(h, v).color(GREY),
            )?;
        }
        for (i, _) in names.iter().enumerate() {
            let col = color(i);
            let pts: Vec<(f64, f64)> = spokes
                .iter()
                .enumerate()
                .map(|(k, s)| at(k, s.values[i].unwrap_or(0.0).clamp(0.0, 1.0)))
                .collect();
            ch.draw_series([Polygon::new(pts.clone(), col.mix(0.12).filled())])?;
            let mut closed = pts.clone();
            closed.push(pts[0]);
            ch.draw_series([PathElement::new(closed, col.stroke_width(3))])?;
            ch.draw_series(pts.iter().map(|&p| Circle::new(p, 5, col.filled())))?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}

/// The caption's note naming the variants the radar leaves out.
fn left_out_note(left_out: &[String], scored: bool) -> String {
    if left_out.is_empty() {
        return String::new();
    }
    format!(
        " Shown: each run's Pareto front ({} against median latency) and its baseline; left out, as another shown variant beats each on both: {}.",
        if scored { "quality" } else { "weight bytes" },
        left_out.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_puts_the_best_at_one() {
        let (v, best) = normalise(&[Some(2.0), Some(4.0), None], false);
        assert_eq!(best, Some(2.0));
        assert_eq!(v, vec![Some(1.0), Some(0.5), None]);
        let (v, _) = normalise(&[Some(0.9), Some(0.45)], true);
        assert_eq!(v, vec![Some(1.0), Some(0.5)]);
    }
}
