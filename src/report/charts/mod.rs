//! The report's charts: one function per chart, from [`ReportData`] to PNG bytes (plotters'
//! bitmap backend, encoded in memory). A chart with no data to show is not drawn: it becomes an
//! [`Omitted`] with a one-line reason.
//!
//! Every chart has a title, axis descriptions with units and a legend strip under the plot; all
//! text is drawn with the bundled font (`font.rs`).

mod confusion;
pub(crate) mod cost;
mod latency;
mod legend;
mod llm;
mod llm_itl;
mod llm_load;
mod llm_memory;
mod llm_quality;
mod llm_rate;
mod palette;
mod radar;
mod resources;
mod roofline;
pub(crate) mod scaling;
pub(crate) mod server;
mod text;

use std::error::Error;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

#[cfg(test)]
use legend::legend_layout;
use legend::{draw_legend, entry, legend_height, Entry, Swatch};
pub(crate) use palette::color;
use palette::tint;
#[cfg(test)]
use palette::{distance, hsl, COLORS, PALETTE};
use text::style;

use super::axis::ValueAxis;
use super::data::ReportData;
use super::font;

/// Width of every chart, pixels.
pub const WIDTH: u32 = 1200;

/// A drawn chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name beside the page, e.g. `latency.png`.
    pub file: String,
    pub title: String,
    /// How to read it (shown under the chart on the page).
    pub caption: String,
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
    /// Where the page shows it.
    pub section: Section,
}

/// The part of the page a chart belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Section {
    #[default]
    General,
    /// Language models (prefill, decode, generate, llm_server): their own section.
    Llm,
}

/// A chart left out for lack of data, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Omitted {
    pub title: String,
    pub why: String,
}

/// What one chart function produced.
#[derive(Debug)]
pub enum Outcome {
    Drawn(Vec<Chart>),
    Omitted(Omitted),
}

fn omitted(title: &str, why: impl Into<String>) -> Result<Outcome, String> {
    Ok(Outcome::Omitted(Omitted {
        title: title.to_string(),
        why: why.into(),
    }))
}

type DrawResult<T = ()> = Result<T, Box<dyn Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A chart function.
type Maker = fn(&ReportData) -> Result<Outcome, String>;

/// Every chart, in page order: those drawn and those omitted.
pub fn render_all(data: &ReportData) -> Result<(Vec<Chart>, Vec<Omitted>), String> {
    let makers: [Maker; 14] = [
        latency::latency,
        latency::distribution,
        latency::throughput,
        cost::quality_latency,
        cost::quality_energy,
        cost::size,
        resources::memory,
        resources::energy,
        radar::radar,
        confusion::confusion,
        scaling::scaling,
        roofline::roofline,
        roofline::profile,
        server::server_load,
    ];
    let mut charts = Vec::new();
    let mut left_out = Vec::new();
    for make in makers {
        match make(data)? {
            Outcome::Drawn(c) => charts.extend(c),
            Outcome::Omitted(o) => left_out.push(o),
        }
    }
    let (llm_charts, llm_left_out) = llm::render(data)?;
    charts.extend(llm_charts);
    left_out.extend(llm_left_out);
    Ok((charts, left_out))
}

/// Draws on a `width` x `height` white canvas and returns the PNG.
fn render(
    file: &str,
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<Vec<u8>, String> {
    font::ensure();
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| format!("{file}: {e}"))?;
        root.present().map_err(|e| format!("{file}: {e}"))?;
    }
    encode_png(&buf, width, height).map_err(|e| format!("{file}: PNG encoding: {e}"))
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(rgb)?;
    }
    Ok(out)
}

/// A chart built by `draw` into a PNG of the given size.
fn chart(
    file: &str,
    title: &str,
    caption: String,
    height: u32,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<Chart, String> {
    let png = render(file, WIDTH, height, draw)?;
    Ok(Chart {
        file: file.to_string(),
        title: title.to_string(),
        caption,
        width: WIDTH,
        height,
        png,
        section: Section::General,
    })
}

// ---- style ----

const GREY: RGBColor = RGBColor(0x70, 0x70, 0x70);
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);

const TITLE_SIZE: u32 = 24;
/// Height of the band holding the title.
const TITLE_BAND: u32 = 52;
const LABEL_SIZE: u32 = 15;
const DESC_SIZE: u32 = 17;

/// Width in pixels of `s` at `size`.
fn text_width(s: &str, size: u32) -> u32 {
    text::width(s, size)
}

/// Room left of a plot for category labels (`labels`) and the rotated axis description.
fn label_area(labels: &[String]) -> u32 {
    let widest = labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE))
        .max()
        .unwrap_or(0);
    (widest + 24 + text::height(DESC_SIZE) + 12).clamp(70, 600)
}

/// Room left of a plot for a value axis's tick labels and its description.
fn value_label_area(axis: &ValueAxis) -> u32 {
    let labels: Vec<String> = axis
        .key_points(10usize)
        .iter()
        .map(|v| axis.format_ext(v))
        .collect();
    label_area(&labels)
}

/// Draws `s` at a data point of `ch`, shifted by `offset` pixels (on the canvas `root`).
fn annotate<X, Y>(
    root: &Area<'_>,
    ch: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    at: (f64, f64),
    offset: (i32, i32),
    s: &str,
    st: text::Style,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let (x, y) = ch.backend_coord(&at);
    text::draw(root, s, (x + offset.0, y + offset.1), st)
}

fn no_label(_: &f64) -> String {
    String::new()
}

/// Grid, axis lines and tick marks by plotters; tick labels and axis descriptions drawn with
/// our text (on `root`). `None` for a description leaves that axis unlabelled (a side panel).
fn axes<X, Y>(
    root: &Area<'_>,
    ch: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    x_desc: Option<&str>,
    y_desc: Option<&str>,
    grid: (bool, bool),
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64> + Clone,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64> + Clone,
{
    {
        let mut mesh = ch.configure_mesh();
        mesh.x_labels(10)
            .y_labels(10)
            .max_light_lines(0)
            .x_label_formatter(&no_label)
            .y_label_formatter(&no_label)
            .bold_line_style(RGBColor(225, 225, 225))
            .axis_style(GREY);
        if !grid.0 {
            mesh.disable_x_mesh();
        }
        if !grid.1 {
            mesh.disable_y_mesh();
        }
        mesh.draw()?;
    }
    let spec = ch.as_coord_spec();
    let (xs, ys) = (spec.x_spec().clone(), spec.y_spec().clone());
    let (xr, yr) = ch.plotting_area().get_pixel_range();
    let label = style(LABEL_SIZE);
    let lh = text::height(LABEL_SIZE) as i32;
    if let Some(desc) = x_desc {
        for v in xs.key_points(10usize) {
            let (px, _) = ch.backend_coord(&(v, ys.range().start));
            let s = xs.format_ext(&v);
            text::draw(
                root,
                &s,
                (px, yr.end + 8),
                label.at(HPos::Center, VPos::Top),
            )?;
        }
        text::draw(
            root,
            desc,
            ((xr.start + xr.end) / 2, yr.end + 14 + lh),
            style(DESC_SIZE).at(HPos::Center, VPos::Top),
        )?;
    }
    if let Some(desc) = y_desc {
        let mut widest = 0;
        for v in ys.key_points(10usize) {
            let (_, py) = ch.backend_coord(&(xs.range().start, v));
            let s = ys.format_ext(&v);
            widest = widest.max(text_width(&s, LABEL_SIZE) as i32);
            text::draw(
                root,
                &s,
                (xr.start - 10, py),
                label.at(HPos::Right, VPos::Center),
            )?;
        }
        text::draw(
            root,
            desc,
            (xr.start - 22 - widest, (yr.start + yr.end) / 2),
            style(DESC_SIZE).at(HPos::Center, VPos::Bottom).vertical(),
        )?;
    }
    Ok(())
}

/// Title on top, legend strip at the bottom; returns the area left for the plot.
fn frame<'a>(root: &Area<'a>, title: &str, legend: &[Entry]) -> DrawResult<Area<'a>> {
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    text::draw(
        root,
        title,
        (w as i32 / 2, 12),
        style(TITLE_SIZE).at(HPos::Center, VPos::Top),
    )?;
    let (_, body) = root.split_vertically(TITLE_BAND);
    let lh = legend_height(legend);
    if lh == 0 {
        return Ok(body);
    }
    let (_, h) = body.dim_in_pixel();
    let (plot, strip) = body.split_vertically(h.saturating_sub(lh));
    draw_legend(&strip, legend)?;
    Ok(plot)
}

/// Height of a chart: title, `rows` rows of `row_px`, axis labels and the legend.
fn height_for(rows: usize, row_px: u32, legend: &[Entry], min: u32) -> u32 {
    (60 + 40 + 70 + rows as u32 * row_px + legend_height(legend)).clamp(min, 4000)
}

/// Diagonal hatching inside a pixel rectangle (x0, y0, x1, y1), drawn on `area` (the canvas root
/// or any area whose coordinates are pixels).
fn hatch(area: &Area<'_>, rect: (i32, i32, i32, i32), c: RGBColor) -> DrawResult {
    let (x0, y0, x1, y1) = (
        rect.0.min(rect.2),
        rect.1.min(rect.3),
        rect.0.max(rect.2),
        rect.1.max(rect.3),
    );
    let style = c.stroke_width(2);
    let mut k = x0 + y0 + 4;
    while k < x1 + y1 {
        // The line x + y = k, clipped to the rectangle.
        let xa = x0.max(k - y1);
        let xb = x1.min(k - y0);
        if xa < xb {
            area.draw(&PathElement::new(vec![(xa, k - xa), (xb, k - xb)], style))?;
        }
        k += 8;
    }
    Ok(())
}

/// A label to place beside a point: the point's centre and radius (pixels), and its text.
struct PointLabel {
    center: (i32, i32),
    radius: i32,
    text: String,
    style: text::Style,
}

/// A pixel rectangle (x0, y0, x1, y1).
type Rect = (i32, i32, i32, i32);

/// Where a label went: its anchor and alignment, the box it covers, and whether it sits away
/// from its point (then a leader line joins them).
#[derive(Clone, Copy)]
struct Placed {
    at: (i32, i32),
    h: HPos,
    v: VPos,
    rect: Rect,
    leader: bool,
}

fn overlap(a: Rect, b: Rect) -> i64 {
    let w = i64::from((a.2.min(b.2) - a.0.max(b.0)).max(0));
    let h = i64::from((a.3.min(b.3) - a.1.max(b.1)).max(0));
    w * h
}

/// Places labels beside their points so that no label overlaps another label or another
/// point, and none leaves `bounds`: for each label in order, the first free spot among
/// right/left, above/below, then further up or down, then farther out in eight directions
/// with a leader line. A label with no free spot is left out (`None`) rather than drawn over
/// its neighbours.
fn place_labels(labels: &[PointLabel], bounds: Rect) -> Vec<Option<Placed>> {
    let circle = |l: &PointLabel| {
        let (x, y, r) = (l.center.0, l.center.1, l.radius);
        (x - r, y - r, x + r, y + r)
    };
    let points: Vec<Rect> = labels.iter().map(circle).collect();
    let mut taken: Vec<Rect> = Vec::new();
    let mut out = Vec::new();
    for (n, l) in labels.iter().enumerate() {
        let w = text::width(&l.text, l.style.size as u32) as i32;
        let h = text::height(l.style.size as u32) as i32;
        let (cx, cy, r) = (l.center.0, l.center.1, l.radius * 7 / 10 + 3);
        let mut candidates: Vec<((i32, i32), HPos, VPos, bool)> = vec![
            ((cx + r, cy - r), HPos::Left, VPos::Bottom, false),
            ((cx + r, cy + r), HPos::Left, VPos::Top, false),
            ((cx - r, cy - r), HPos::Right, VPos::Bottom, false),
            ((cx - r, cy + r), HPos::Right, VPos::Top, false),
        ];
        for k in 1..6 {
            let leader = k > 1;
            let up = cy - r - k * (h + 2);
            let down = cy + r + k * (h + 2);
            candidates.push(((cx + r, up), HPos::Left, VPos::Bottom, leader));
            candidates.push(((cx + r, down), HPos::Left, VPos::Top, leader));
            candidates.push(((cx - r, up), HPos::Right, VPos::Bottom, leader));
            candidates.push(((cx - r, down), HPos::Right, VPos::Top, leader));
        }
        for reach in [2, 3, 4, 6, 8] {
            let d = reach * (h + 4);
            for (dx, dy) in [
                (1, 0),
                (-1, 0),
                (0, -1),
                (0, 1),
                (1, -1),
                (-1, -1),
                (1, 1),
                (-1, 1),
            ] {
                let hp = match dx {
                    1 => HPos::Left,
                    -1 => HPos::Right,
                    _ => HPos::Center,
                };
                let vp = match dy {
                    -1 => VPos::Bottom,
                    1 => VPos::Top,
                    _ => VPos::Center,
                };
                candidates.push(((cx + dx * (r + d), cy + dy * (r + d)), hp, vp, true));
            }
        }
        let rect_of = |&((x, y), hp, vp, _): &((i32, i32), HPos, VPos, bool)| -> Rect {
            let x0 = match hp {
                HPos::Left => x,
                HPos::Center => x - w / 2,
                HPos::Right => x - w,
            };
            let y0 = match vp {
                VPos::Top => y,
                VPos::Center => y - h / 2,
                VPos::Bottom => y - h,
            };
            (x0, y0, x0 + w, y0 + h)
        };
        let inside =
            |r: Rect| r.0 >= bounds.0 && r.1 >= bounds.1 && r.2 <= bounds.2 && r.3 <= bounds.3;
        let free = |rect: Rect| {
            inside(rect)
                && taken.iter().all(|t| overlap(rect, *t) == 0)
                && points
                    .iter()
                    .enumerate()
                    .all(|(m, p)| m == n || overlap(rect, *p) == 0)
        };
        let spot = candidates
            .iter()
            .find(|c| free(rect_of(c)))
            .map(|c| Placed {
                at: c.0,
                h: c.1,
                v: c.2,
                rect: rect_of(c),
                leader: c.3,
            });
        if let Some(p) = spot {
            taken.push(p.rect);
        }
        out.push(spot);
    }
    out
}

/// Places `labels` (as [`place_labels`]) and draws them on `root`, each away from its point
/// joined to it by a thin line; returns how many found no free spot and were left out.
fn draw_labels(root: &Area<'_>, labels: &[PointLabel], bounds: Rect) -> DrawResult<usize> {
    let spots = place_labels(labels, bounds);
    for (l, spot) in labels.iter().zip(&spots) {
        let Some(p) = spot else { continue };
        if p.leader {
            let (x, y) = l.center;
            let near = (x.clamp(p.rect.0, p.rect.2), y.clamp(p.rect.1, p.rect.3));
            root.draw(&PathElement::new(
                vec![l.center, near],
                GREY.stroke_width(1),
            ))?;
        }
        text::draw(root, &l.text, p.at, l.style.at(p.h, p.v))?;
    }
    Ok(spots.iter().filter(|s| s.is_none()).count())
}

/// The caption's note on labels left out for lack of room (empty when none were).
fn unnamed_note(count: usize) -> String {
    match count {
        0 => String::new(),
        1 => " One crowded point is left unnamed rather than drawn over its neighbours; the tables below name every case.".into(),
        n => format!(" {n} crowded points are left unnamed rather than drawn over their neighbours; the tables below name every case."),
    }
}

/// y of row `i` of `n` on a [`super::axis::CategoryAxis`], the first row at the top.
fn row_y(i: usize, n: usize) -> f64 {
    (n - 1 - i) as f64 + 0.5
}

/// Labels in top-down order for a category y axis (which counts from the bottom).
fn rows_axis(labels: &[String]) -> super::axis::CategoryAxis {
    super::axis::CategoryAxis::new(labels.iter().rev().cloned().collect())
}

/// The layout every row chart shares: one row per label (the first on top) against the
/// value `axis` along x, vertical grid lines only, both axes described.
fn rows_chart<'b, 'a>(
    root: &Area<'_>,
    body: &'b Area<'a>,
    axis: &ValueAxis,
    labels: &[String],
    x_desc: &str,
    y_desc: &str,
) -> DrawResult<
    ChartContext<'b, BitMapBackend<'a>, Cartesian2d<ValueAxis, super::axis::CategoryAxis>>,
> {
    let mut ch = ChartBuilder::on(body)
        .margin(16)
        .margin_right(30)
        .x_label_area_size(56)
        .y_label_area_size(label_area(labels))
        .build_cartesian_2d(axis.clone(), rows_axis(labels))?;
    axes(root, &mut ch, Some(x_desc), Some(y_desc), (true, false))?;
    Ok(ch)
}

/// A short file-name-safe form of a name: `cnn-q8 [B]` -> `cnn-q8-b`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod llm_tests;
#[cfg(test)]
mod tests;
