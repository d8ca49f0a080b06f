//! Memory and energy per case; energy estimates hatched and labelled, never drawn as
//! measurements.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::text::style;

use super::super::axis::{CategoryAxis, ValueAxis};
use super::super::data::{CaseView, ReportData};
use super::super::format;
use super::*;

fn case_label(d: &ReportData, c: &CaseView) -> String {
    d.tag(&c.case.id, c.run)
}

pub fn memory(d: &ReportData) -> Result<Outcome, String> {
    const TITLE: &str = "Memory per case: worker RSS and the forward pass's peak heap";
    let rows: Vec<&CaseView> = d.cases.iter().filter(|c| c.case.memory.is_some()).collect();
    if rows.is_empty() {
        return omitted(TITLE, "no case recorded memory figures");
    }
    let labels: Vec<String> = rows.iter().map(|c| case_label(d, c)).collect();
    let mems: Vec<_> = rows
        .iter()
        .map(|c| c.case.memory.as_ref().expect("filtered"))
        .collect();
    let any_heap = mems.iter().any(|m| m.peak_heap_bytes.is_some());
    let mut legend = vec![
        entry(
            Swatch::Bar(tint(color(0), 0.4)),
            "peak RSS of the worker (VmHWM)",
        ),
        entry(Swatch::Bar(color(0)), "RSS after the model was built"),
    ];
    if any_heap {
        legend.push(entry(
            Swatch::Bar(color(1)),
            "peak heap of a forward pass (weights and inputs excluded)",
        ));
    }
    let height = height_for(rows.len(), 30, &legend, 420);
    let caption = "Left: resident set size of each case's own worker process, its peak over the worker's life (light) and right after the model was built (dark). Right: the largest heap live at once during a separate pass of forward passes, above what was live before it: the working memory of inference. Each case runs in a fresh worker, so the figures are the case's alone.".to_string();
    const MIB: f64 = 1024.0 * 1024.0;
    let png = chart("memory.png", TITLE, caption, height, |root| {
        let body = frame(root, TITLE, &legend)?;
        let (w, _) = body.dim_in_pixel();
        let (left, right) = if any_heap {
            body.split_horizontally(w * 64 / 100)
        } else {
            (body.clone(), body.clone())
        };
        let n = rows.len();
        let xr = ValueAxis::fit(
            mems.iter().map(|m| m.peak_rss_bytes as f64 / MIB),
            true,
            0.22,
        );
        let mut ch = ChartBuilder::on(&left)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(label_area(&labels))
            .build_cartesian_2d(xr.clone(), rows_axis(&labels))?;
        axes(
            root,
            &mut ch,
            Some(&format!("resident set size (MiB{})", xr.scale_note())),
            Some("case"),
            (true, false),
        )?;
        for (i, m) in mems.iter().enumerate() {
            let y = row_y(i, n);
            let peak = m.peak_rss_bytes as f64 / MIB;
            let after = m.rss_after_load_bytes as f64 / MIB;
            ch.draw_series([
                Rectangle::new(
                    [(xr.lo, y - 0.36), (peak, y + 0.36)],
                    tint(color(0), 0.4).filled(),
                ),
                Rectangle::new(
                    [(xr.lo, y - 0.16), (after.max(xr.lo), y + 0.16)],
                    color(0).filled(),
                ),
            ])?;
            annotate(
                root,
                &ch,
                (peak, y),
                (6, 0),
                &format!("{peak:.1} MiB"),
                style(LABEL_SIZE - 2).at(HPos::Left, VPos::Center),
            )?;
        }
        if any_heap {
            let heaps: Vec<Option<f64>> = mems
                .iter()
                .map(|m| m.peak_heap_bytes.map(|b| b as f64))
                .collect();
            let unit = if heaps.iter().flatten().any(|b| *b >= MIB) {
                (MIB, "MiB")
            } else {
                (1024.0, "KiB")
            };
            let xh = ValueAxis::fit(heaps.iter().flatten().map(|b| b / unit.0), true, 0.2);
            let mut ch = ChartBuilder::on(&right)
                .margin(16)
                .x_label_area_size(56)
                .y_label_area_size(10)
                .build_cartesian_2d(xh.clone(), CategoryAxis::new(vec![String::new(); n]))?;
            axes(
                root,
                &mut ch,
                Some(&format!("peak heap ({}{})", unit.1, xh.scale_note())),
                None,
                (true, false),
            )?;
            for (i, h) in heaps.iter().enumerate() {
                let y = row_y(i, n);
                match h {
                    Some(b) => {
                        let v = b / unit.0;
                        ch.draw_series([Rectangle::new(
                            [(xh.lo, y - 0.3), (v.max(xh.lo), y + 0.3)],
                            color(1).filled(),
                        )])?;
                        annotate(
                            root,
                            &ch,
                            (v.max(xh.lo), y),
                            (6, 0),
                            &format::bytes(*b),
                            style(LABEL_SIZE - 2).at(HPos::Left, VPos::Center),
                        )?;
                    }
                    None => {
                        annotate(
                            root,
                            &ch,
                            (xh.lo, y),
                            (6, 0),
                            "not measured",
                            style(LABEL_SIZE - 2)
                                .at(HPos::Left, VPos::Center)
                                .color(GREY),
                        )?;
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}

pub fn energy(d: &ReportData) -> Result<Outcome, String> {
    let rows: Vec<&CaseView> = d.cases.iter().filter(|c| c.case.energy.is_some()).collect();
    if rows.is_empty() {
        return omitted("Energy per inference", "no case recorded energy figures");
    }
    let figures: Vec<(f64, bool, &str)> = rows
        .iter()
        .map(|c| {
            let e = c.case.energy.as_ref().expect("filtered");
            (
                e.joules_per_inference * 1000.0,
                e.method.is_estimate(),
                e.method.as_str(),
            )
        })
        .collect();
    let any_est = figures.iter().any(|f| f.1);
    let all_est = figures.iter().all(|f| f.1);
    let title = match (any_est, all_est) {
        (_, true) => "Energy per inference: ALL ESTIMATED (CPU time x TDP), hatched",
        (true, false) => "Energy per inference: hatched bars are ESTIMATES, solid bars measured",
        _ => "Energy per inference (measured by hardware counters)",
    };
    let mut methods: Vec<&str> = figures.iter().filter(|f| !f.1).map(|f| f.2).collect();
    methods.sort();
    methods.dedup();
    let labels: Vec<String> = rows.iter().map(|c| case_label(d, c)).collect();
    let mut legend = Vec::new();
    if figures.iter().any(|f| !f.1) {
        legend.push(entry(
            Swatch::Bar(color(3)),
            format!("measured ({})", methods.join(", ")),
        ));
    }
    if any_est {
        legend.push(entry(
            Swatch::Hatched(color(1)),
            "ESTIMATED: worker CPU time x TDP per hardware thread (estimate-tdp)",
        ));
    }
    let height = height_for(rows.len(), 30, &legend, 420);
    let axis = ValueAxis::fit(figures.iter().map(|f| f.0), true, 0.2);
    let caption = format!(
        "Millijoules per inference (sample) over each case's measured window. Solid bars come from hardware counters (RAPL for CPUs, NVML for GPUs); hatched bars labelled \"estimated\" are estimates from the worker's CPU time and a TDP (method estimate-tdp): use them to compare cases of this run with each other, not as measurements.{}",
        if axis.log { " Log scale." } else { "" }
    );
    let png = chart("energy.png", title, caption, height, |root| {
        let body = frame(root, title, &legend)?;
        let n = rows.len();
        let mut ch = rows_chart(
            root,
            &body,
            &axis,
            &labels,
            &format!(
                "energy per inference (mJ{}{})",
                if all_est { ", ESTIMATED" } else { "" },
                axis.scale_note()
            ),
            "case",
        )?;
        for (i, &(mj, est, _)) in figures.iter().enumerate() {
            let y = row_y(i, n);
            let v = mj.max(axis.lo);
            if est {
                ch.draw_series([Rectangle::new(
                    [(axis.lo, y - 0.34), (v, y + 0.34)],
                    tint(color(1), 0.22).filled(),
                )])?;
                let (x0, y0) = ch.backend_coord(&(axis.lo, y + 0.34));
                let (x1, y1) = ch.backend_coord(&(v, y - 0.34));
                hatch(root, (x0, y0, x1, y1), color(1))?;
                ch.draw_series([Rectangle::new(
                    [(axis.lo, y - 0.34), (v, y + 0.34)],
                    color(1).stroke_width(1),
                )])?;
            } else {
                ch.draw_series([Rectangle::new(
                    [(axis.lo, y - 0.34), (v, y + 0.34)],
                    color(3).filled(),
                )])?;
            }
            let label = if est {
                format!("~{} mJ estimated", format::mj(mj))
            } else {
                format!("{} mJ", format::mj(mj))
            };
            annotate(
                root,
                &ch,
                (v, y),
                (6, 0),
                &label,
                style(LABEL_SIZE - 2).at(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })?;
    Ok(Outcome::Drawn(vec![png]))
}
