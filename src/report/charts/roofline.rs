//! Issue #7's charts: the per-layer time of each profiled case, and the roofline with every
//! case placed on it.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;

use super::super::axis::ValueAxis;
use super::super::data::{CaseView, ReportData};
use super::super::format;
use super::*;
use crate::schema::LayerKind;

fn kind_color(k: LayerKind) -> RGBColor {
    match k {
        LayerKind::Conv => color(0),
        LayerKind::Pool => color(1),
        LayerKind::Dense => color(3),
        LayerKind::Other => color(5),
    }
}

/// One bar chart per profiled case: each layer's mean time and share, then the sum of the
/// layers against the unprofiled forward pass.
pub fn profile(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Per-layer time";
    let cases: Vec<&CaseView> = d
        .cases
        .iter()
        .filter(|c| c.case.profile.is_some())
        .collect();
    if cases.is_empty() {
        return omitted(
            TITLE,
            "no case carries a per-layer profile (made by `inferbench profile SUITE --case ID`)",
        );
    }
    let mut charts = Vec::new();
    for c in cases {
        let p = c.case.profile.as_ref().expect("filtered");
        let name = d.tag(&c.case.id, c.run);
        let title = format!("{TITLE}: {name}");
        let mut labels: Vec<String> = p
            .layers
            .iter()
            .map(|l| format!("{} {}", l.name, crate::schema::shape_text(&l.output_shape)))
            .collect();
        labels.push("sum of the layers".into());
        labels.push("forward, unprofiled".into());
        let mut values: Vec<f64> = p.layers.iter().map(|l| l.mean_ms).collect();
        values.push(p.layer_sum_mean_ms);
        values.push(p.forward_mean_ms);
        let x = ValueAxis::fit(values.iter().copied(), true, 0.3);
        let mut legend = Vec::new();
        for k in [
            LayerKind::Conv,
            LayerKind::Pool,
            LayerKind::Dense,
            LayerKind::Other,
        ] {
            if p.layers.iter().any(|l| l.kind == k) {
                legend.push(entry(Swatch::Bar(kind_color(k)), k.as_str()));
            }
        }
        legend.push(entry(
            Swatch::Bar(GREY),
            "whole forward pass: layers summed, and measured without per-layer timing",
        ));
        let height = height_for(labels.len(), 34, &legend, 380);
        let caption = format!(
            "Mean time of each layer of {} (batch {}) over {} profiled iterations, each layer ended by a device synchronisation and a clock read; the label gives the mean and its share of the layers' sum. The two grey bars compare the layers' sum ({} ms) with the mean of the unprofiled forward pass ({} ms; sampled in the same worker before and again after the profiled pass, each weighing half): a difference of {:+.4} ms ({:+.1}%).",
            c.case.id,
            p.batch_size,
            p.iterations,
            format::ms(p.layer_sum_mean_ms),
            format::ms(p.forward_mean_ms),
            p.difference_ms,
            p.difference_share * 100.0
        );
        let file = format!("profile-{}.png", slug(&name));
        let kinds: Vec<Option<LayerKind>> = p
            .layers
            .iter()
            .map(|l| Some(l.kind))
            .chain([None, None])
            .collect();
        let shares: Vec<Option<f64>> = p
            .layers
            .iter()
            .map(|l| Some(l.share))
            .chain([None, None])
            .collect();
        let png = chart(&file, &title, caption, height, |root| {
            let body = frame(root, &title, &legend)?;
            let n = labels.len();
            let mut ch = ChartBuilder::on(&body)
                .margin(16)
                .margin_right(40)
                .x_label_area_size(56)
                .y_label_area_size(label_area(&labels))
                .build_cartesian_2d(x.clone(), rows_axis(&labels))?;
            axes(
                root,
                &mut ch,
                Some(&format!("mean time (ms{})", x.scale_note())),
                Some("layer (output shape)"),
                (true, false),
            )?;
            for (i, v) in values.iter().enumerate() {
                let y = row_y(i, n);
                let col = kinds[i].map(kind_color).unwrap_or(GREY);
                ch.draw_series([Rectangle::new(
                    [(x.lo, y - 0.34), (*v, y + 0.34)],
                    col.filled(),
                )])?;
                let label = match shares[i] {
                    Some(s) => format!("{} ms ({:.1}%)", format::ms(*v), s * 100.0),
                    None => format!("{} ms", format::ms(*v)),
                };
                annotate(
                    root,
                    &ch,
                    (*v, y),
                    (6, 0),
                    &label,
                    style(LABEL_SIZE).at(HPos::Left, VPos::Center),
                )?;
            }
            Ok(())
        })?;
        charts.push(png);
    }
    Ok(Outcome::Drawn(charts))
}

/// A case on the roofline: its name, thread count, intensity and achieved GFLOP/s.
struct RoofPoint {
    name: String,
    threads: usize,
    intensity: f64,
    gflops: f64,
    efficiency: f64,
}

/// A roof: thread count, peak GFLOP/s and GB/s (the legend names it).
type Roof = (usize, f64, f64);

pub fn roofline(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Roofline: achieved compute rate against arithmetic intensity";
    let points: Vec<RoofPoint> = d
        .cases
        .iter()
        .filter(|c| c.measured())
        .filter_map(|c| {
            let r = c.case.roofline.as_ref()?;
            (r.arithmetic_intensity > 0.0 && r.achieved_gflops > 0.0).then(|| RoofPoint {
                name: format!("{} b{}", d.variant_of(c), c.case.batch_size),
                threads: r.threads,
                intensity: r.arithmetic_intensity,
                gflops: r.achieved_gflops,
                efficiency: r.efficiency,
            })
        })
        .collect();
    if points.is_empty() {
        let why = if d.runs.iter().all(|r| r.run.peaks.is_none()) {
            "the run carries no measured peaks: measure them with `inferbench env --peaks` before `inferbench run`"
        } else {
            "no measured CPU case has peaks at its thread count"
        };
        return omitted(TITLE, why);
    }
    let mut roofs: Vec<Roof> = Vec::new();
    for c in d.cases.iter().filter_map(|c| c.case.roofline.as_ref()) {
        let r = (c.threads, c.peak_gflops, c.peak_gbs);
        if !roofs.contains(&r) {
            roofs.push(r);
        }
    }
    roofs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let decade_below = |v: f64| 10f64.powf((v / 2.0).log10().floor());
    let decade_above = |v: f64| 10f64.powf((v * 2.0).log10().ceil());
    let ridges = roofs.iter().map(|r| r.1 / r.2);
    let x_min = points
        .iter()
        .map(|p| p.intensity)
        .fold(f64::INFINITY, f64::min);
    let x_max = points
        .iter()
        .map(|p| p.intensity)
        .chain(ridges)
        .fold(0.0, f64::max);
    let y_min = points
        .iter()
        .map(|p| p.gflops)
        .fold(f64::INFINITY, f64::min);
    let y_max = roofs
        .iter()
        .map(|r| r.1)
        .chain(points.iter().map(|p| p.gflops))
        .fold(0.0, f64::max);
    let x = ValueAxis {
        lo: decade_below(x_min),
        hi: decade_above(x_max),
        log: true,
        ticks: None,
        bytes: false,
    };
    let y = ValueAxis {
        lo: decade_below(y_min.min(x.lo * roofs.iter().map(|r| r.2).fold(f64::INFINITY, f64::min))),
        hi: decade_above(y_max),
        log: true,
        ticks: None,
        bytes: false,
    };
    let roof_color = |threads: usize| color(roofs.iter().position(|r| r.0 == threads).unwrap_or(0));
    let mut legend: Vec<Entry> = roofs
        .iter()
        .map(|r| {
            entry(
                Swatch::Line(roof_color(r.0)),
                format!(
                    "{} thread(s): roof min({} GFLOP/s, {} GB/s x intensity)",
                    r.0,
                    format::num(r.1),
                    format::num(r.2)
                ),
            )
        })
        .collect();
    legend.push(entry(
        Swatch::Dot(GREY),
        "a case (variant, batch), coloured by its thread count",
    ));
    let height = 780 + legend_height(&legend);
    let caption = "Log-log. Each roof is the machine's measured peaks at one thread count (`inferbench env --peaks`): the flat part is the best f32 matmul rate with candle, the sloped part the best copy bandwidth times arithmetic intensity. Each point is a case: FLOPs per inference (multiply-adds x 2) x inferences per second, against FLOPs per byte moved under the traffic model (every layer's weights once, its input and output activations once; docs/profile-and-roofline.md, \"Bytes: the traffic model\"). A point's distance below its roof is its efficiency, written after its name. Quantized variants are held against the f32 matmul peak.".to_string();
    let unnamed = std::cell::Cell::new(0);
    let mut png = chart("roofline.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let mut ch = ChartBuilder::on(&body)
            .margin(20)
            .margin_right(40)
            .x_label_area_size(56)
            .y_label_area_size(value_label_area(&y))
            .build_cartesian_2d(x.clone(), y.clone())?;
        axes(
            root,
            &mut ch,
            Some("arithmetic intensity (FLOP per byte moved, log scale)"),
            Some("achieved GFLOP/s (log scale)"),
            (true, true),
        )?;
        for &(threads, peak, bw) in &roofs {
            let ridge = peak / bw;
            let mut path = vec![(x.lo, (x.lo * bw).min(peak))];
            if ridge > x.lo && ridge < x.hi {
                path.push((ridge, peak));
            }
            path.push((x.hi, (x.hi * bw).min(peak)));
            ch.draw_series(LineSeries::new(path, roof_color(threads).stroke_width(3)))?;
        }
        for p in &points {
            let col = roof_color(p.threads);
            ch.draw_series([Circle::new((p.intensity, p.gflops), 6, col.filled())])?;
            ch.draw_series([Circle::new((p.intensity, p.gflops), 6, INK.stroke_width(1))])?;
        }
        let labels: Vec<PointLabel> = points
            .iter()
            .map(|p| PointLabel {
                center: ch.backend_coord(&(p.intensity, p.gflops)),
                radius: 6,
                text: format!("{} ({:.0}%)", p.name, p.efficiency * 100.0),
                style: style(LABEL_SIZE - 2),
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
    png.caption.push_str(&unnamed_note(unnamed.get()));
    Ok(Outcome::Drawn(vec![png]))
}
