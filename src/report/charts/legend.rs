//! The legend strip under every chart: swatches and their labels, laid out in rows.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;
use super::DrawResult;
use super::*;

/// What a legend entry's swatch looks like.
#[derive(Debug, Clone, Copy)]
pub(super) enum Swatch {
    Bar(RGBColor),
    Hatched(RGBColor),
    Line(RGBColor),
    Dot(RGBColor),
    Hollow(RGBColor),
    Triangle,
    Whisker,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub swatch: Swatch,
    pub label: String,
}

pub(super) fn entry(swatch: Swatch, label: impl Into<String>) -> Entry {
    Entry {
        swatch,
        label: label.into(),
    }
}

const SWATCH_W: i32 = 26;
const LEGEND_ROW: u32 = 26;

/// Positions of the entries in rows `width` wide: (x, row) each, and the row count.
pub(super) fn legend_layout(entries: &[Entry], width: u32) -> (Vec<(i32, u32)>, u32) {
    let mut pos = Vec::new();
    let (mut x, mut row) = (16i32, 0u32);
    for e in entries {
        let w = SWATCH_W + 8 + text_width(&e.label, LABEL_SIZE) as i32 + 26;
        if x > 16 && x + w > width as i32 - 16 {
            x = 16;
            row += 1;
        }
        pos.push((x, row));
        x += w;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    (pos, rows)
}

/// Height of the legend strip for these entries.
pub(super) fn legend_height(entries: &[Entry]) -> u32 {
    let (_, rows) = legend_layout(entries, WIDTH);
    if rows == 0 {
        0
    } else {
        rows * LEGEND_ROW + 18
    }
}

pub(super) fn draw_legend(area: &Area<'_>, entries: &[Entry]) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let (pos, _) = legend_layout(entries, w);
    for (e, &(x, row)) in entries.iter().zip(&pos) {
        let cy = 10 + row as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        let (x0, x1) = (x, x + SWATCH_W);
        match e.swatch {
            Swatch::Bar(c) => {
                area.draw(&Rectangle::new([(x0, cy - 7), (x1, cy + 7)], c.filled()))?;
            }
            Swatch::Hatched(c) => {
                area.draw(&Rectangle::new(
                    [(x0, cy - 7), (x1, cy + 7)],
                    c.mix(0.25).filled(),
                ))?;
                hatch(area, (x0, cy - 7, x1, cy + 7), c)?;
                area.draw(&Rectangle::new(
                    [(x0, cy - 7), (x1, cy + 7)],
                    c.stroke_width(1),
                ))?;
            }
            Swatch::Line(c) => {
                area.draw(&PathElement::new(
                    vec![(x0, cy), (x1, cy)],
                    c.stroke_width(3),
                ))?;
            }
            Swatch::Dot(c) => {
                area.draw(&Circle::new((x0 + SWATCH_W / 2, cy), 6, c.filled()))?;
            }
            Swatch::Hollow(c) => {
                area.draw(&Circle::new((x0 + SWATCH_W / 2, cy), 6, c.stroke_width(2)))?;
            }
            Swatch::Triangle => {
                area.draw(&TriangleMarker::new(
                    (x0 + SWATCH_W / 2, cy),
                    7,
                    INK.filled(),
                ))?;
            }
            Swatch::Whisker => {
                let s = INK.stroke_width(2);
                area.draw(&PathElement::new(vec![(x0, cy), (x1, cy)], s))?;
                area.draw(&PathElement::new(vec![(x0, cy - 6), (x0, cy + 6)], s))?;
                area.draw(&PathElement::new(vec![(x1, cy - 6), (x1, cy + 6)], s))?;
            }
        }
        text::draw(
            area,
            &e.label,
            (x1 + 8, cy),
            style(LABEL_SIZE).at(HPos::Left, VPos::Center),
        )?;
    }
    Ok(())
}
