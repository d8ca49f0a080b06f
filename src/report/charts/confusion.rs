//! Confusion matrix heatmap per variant, every cell annotated with its count.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;

use super::super::axis::CategoryAxis;
use super::super::data::ReportData;
use super::super::format;
use super::*;

/// Colour of a cell holding `share` of its true class.
fn heat(share: f64) -> RGBColor {
    // A square root lifts small error counts off white so they are seen.
    tint(RGBColor(0x1F, 0x4E, 0x8C), share.clamp(0.0, 1.0).sqrt())
}

pub fn confusion(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Confusion matrices";
    let mut charts = Vec::new();
    for (run, variant) in d.variants() {
        let Some(c) = d.cases.iter().find(|c| {
            c.run == run
                && c.variant() == variant
                && c.quality.confusion.as_ref().is_some_and(|m| !m.is_empty())
        }) else {
            continue;
        };
        let m = c.quality.confusion.clone().expect("checked");
        let n = m.len();
        let name = d.tag(&variant, run);
        let total: u64 = m.iter().flatten().sum();
        let correct: u64 = (0..n).map(|i| m[i].get(i).copied().unwrap_or(0)).sum();
        let title = format!(
            "Confusion matrix: {name} (accuracy {}, {total} samples)",
            if total > 0 {
                format::pct(correct as f64 / total as f64)
            } else {
                "-".into()
            }
        );
        let legend = vec![
            entry(Swatch::Bar(heat(0.02)), "2%"),
            entry(Swatch::Bar(heat(0.25)), "25%"),
            entry(Swatch::Bar(heat(0.6)), "60%"),
            entry(Swatch::Bar(heat(1.0)), "100% of the row's true class"),
        ];
        let caption = format!(
            "Rows are the true classes, columns the predicted ones; each cell holds the count of test samples{}, coloured by its share of the row (the class's recall on the diagonal). Off-diagonal colour shows which classes {name} confuses.",
            c.quality
                .dataset
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
        let file = format!("confusion-{}.png", slug(&name));
        let height = 860 + legend_height(&legend);
        let png = chart(&file, &title, caption, height, |root| {
            let body = frame(root, &title, &legend)?;
            let (w, h) = body.dim_in_pixel();
            let side = w.min(h);
            let mx = (w - side) / 2;
            let square = body.margin(0, h - side, mx, mx);
            let labels: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let mut ch = ChartBuilder::on(&square)
                .margin(16)
                .x_label_area_size(56)
                .y_label_area_size(70)
                .build_cartesian_2d(CategoryAxis::new(labels.clone()), rows_axis(&labels))?;
            axes(
                root,
                &mut ch,
                Some("predicted class"),
                Some("true class"),
                (false, false),
            )?;
            let (x0, _) = ch.backend_coord(&(0.0, 0.0));
            let (x1, _) = ch.backend_coord(&(n as f64, 0.0));
            let cell = (x1 - x0) as f64 / n as f64;
            let size = (cell * 0.34).clamp(9.0, 20.0) as u32;
            for (i, row) in m.iter().enumerate() {
                let row_total: u64 = row.iter().sum();
                let y = row_y(i, n);
                for (j, &count) in row.iter().enumerate().take(n) {
                    let share = if row_total > 0 {
                        count as f64 / row_total as f64
                    } else {
                        0.0
                    };
                    let x = CategoryAxis::center(j);
                    ch.draw_series([Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        heat(share).filled(),
                    )])?;
                    ch.draw_series([Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        RGBColor(235, 235, 235).stroke_width(1),
                    )])?;
                    if cell >= 14.0 {
                        let ink = if share > 0.45 { WHITE } else { INK };
                        annotate(
                            root,
                            &ch,
                            (x, y),
                            (0, 0),
                            &count.to_string(),
                            style(size).at(HPos::Center, VPos::Center).color(ink),
                        )?;
                    }
                }
            }
            Ok(())
        })?;
        charts.push(png);
    }
    if charts.is_empty() {
        return omitted(
            TITLE,
            "no variant has a confusion matrix; the run scored no dataset",
        );
    }
    Ok(Outcome::Drawn(charts))
}
