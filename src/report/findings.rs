//! "What this shows": plain sentences generated from the data, the same on the page and in the
//! Markdown summary.

use serde::Serialize;

use super::charts::cost::{cost_points, fronts};
use super::charts::scaling::scaling_lines;
use super::data::{CaseView, ReportData};
use super::format;
use crate::schema::{CaseStatus, Scenario};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub text: String,
    /// Something the reader must not miss (estimates, failures, incomparable runs).
    pub warn: bool,
}

fn info(text: String) -> Finding {
    Finding { text, warn: false }
}

fn warn(text: String) -> Finding {
    Finding { text, warn: true }
}

fn scenario_words(c: &CaseView) -> String {
    if c.case.scenario == Scenario::SingleStream {
        "single-stream".into()
    } else {
        format!("{} batch {}", c.case.scenario, c.case.batch_size)
    }
}

pub fn findings(d: &ReportData) -> Vec<Finding> {
    let mut out = Vec::new();
    fastest(d, &mut out);
    throughput(d, &mut out);
    scaling(d, &mut out);
    quality(d, &mut out);
    energy(d, &mut out);
    cold_start(d, &mut out);
    statuses(d, &mut out);
    across_runs(d, &mut out);
    out
}

/// Fastest variant on each target of each run.
fn fastest(d: &ReportData, out: &mut Vec<Finding>) {
    let headline = d.headline();
    let mut groups: Vec<(usize, String)> = Vec::new();
    for c in &headline {
        let key = (c.run, c.case.target.clone());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    for (run, target) in groups {
        let mut cs: Vec<&&CaseView> = headline
            .iter()
            .filter(|c| c.run == run && c.case.target == target)
            .collect();
        cs.sort_by(|a, b| {
            a.p50()
                .unwrap_or(f64::MAX)
                .total_cmp(&b.p50().unwrap_or(f64::MAX))
        });
        let target = d.tag(&target, run);
        let best = cs[0];
        let p = best.p50().unwrap_or(f64::NAN);
        if cs.len() == 1 {
            out.push(info(format!(
                "On {target} only {} was measured: p50 {} ms ({}).",
                best.variant(),
                format::ms(p),
                scenario_words(best)
            )));
        } else {
            let next = cs[1];
            let q = next.p50().unwrap_or(f64::NAN);
            out.push(info(format!(
                "Fastest on {target}: {} at p50 {} ms ({}); next {} at {} ms, {:.1}x slower.",
                best.variant(),
                format::ms(p),
                scenario_words(best),
                next.variant(),
                format::ms(q),
                q / p
            )));
        }
    }
}

fn throughput(d: &ReportData, out: &mut Vec<Finding>) {
    let best = d
        .cases
        .iter()
        .filter(|c| c.measured())
        .filter_map(|c| Some((c, c.case.throughput_per_s?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((c, t)) = best {
        out.push(info(format!(
            "Highest throughput: {} on {}, {}: {} samples/s.",
            d.variant_of(c),
            c.case.target,
            scenario_words(c),
            format::rate(t)
        )));
    }
}

fn scaling(d: &ReportData, out: &mut Vec<Finding>) {
    let lines = scaling_lines(d);
    let ends: Vec<(&str, f64, f64, f64)> = lines
        .iter()
        .map(|l| {
            let (t0, _) = l.points[0];
            let (t1, s) = l.points[l.points.len() - 1];
            (l.name.as_str(), t0, t1, s)
        })
        .collect();
    let (Some(lo), Some(hi)) = (
        ends.iter().min_by(|a, b| a.3.total_cmp(&b.3)),
        ends.iter().max_by(|a, b| a.3.total_cmp(&b.3)),
    ) else {
        return;
    };
    out.push(info(format!(
        "Thread scaling from {} to {} threads: the p50 speed-up ranges from {:.2}x ({}) to {:.2}x ({}); ideal is {:.0}x, below 1x more threads were slower.",
        hi.1, hi.2, lo.3, lo.0, hi.3, hi.0, hi.2 / hi.1
    )));
}

fn quality(d: &ReportData, out: &mut Vec<Finding>) {
    let Some(kind) = d.score_kind() else {
        out.push(info(
            "Quality: this run scored no dataset, so there are no accuracy, Pareto or confusion charts."
                .into(),
        ));
        return;
    };
    let points = cost_points(d, kind, |c| c.p50().map(|p| (p, false)));
    for ((run, target), front) in fronts(&points) {
        if front.is_empty() {
            continue;
        }
        let names: Vec<String> = front
            .iter()
            .map(|&i| {
                format!(
                    "{} ({} ms, {})",
                    d.variant_of(points[i].case),
                    format::ms(points[i].cost),
                    format::pct(points[i].score / 100.0)
                )
            })
            .collect();
        let target = d.tag(&target, run);
        out.push(info(format!(
            "Pareto front of {} against p50 latency on {target}: {}.",
            kind.name(),
            names.join(", ")
        )));
    }
    // Biggest loss against the model's baseline variant, in the same run.
    let mut worst: Option<(String, String, f64, f64)> = None;
    for (run, variant) in d.variants() {
        let Some(c) = d
            .cases
            .iter()
            .find(|c| c.run == run && c.variant() == variant && kind.of(&c.quality).is_some())
        else {
            continue;
        };
        if c.case.variant == "baseline" {
            continue;
        }
        let Some(base) = d.cases.iter().find(|b| {
            b.run == run
                && b.case.model_name == c.case.model_name
                && b.case.variant == "baseline"
                && kind.of(&b.quality).is_some()
        }) else {
            continue;
        };
        let (s, b) = (
            kind.of(&c.quality).unwrap_or(0.0),
            kind.of(&base.quality).unwrap_or(0.0),
        );
        if worst.as_ref().is_none_or(|w| b - s > w.3 - w.2) {
            worst = Some((d.variant_of(c), d.variant_of(base), s, b));
        }
    }
    if let Some((v, base, s, b)) = worst {
        let points = (b - s) * 100.0;
        out.push(if points > 0.0 {
            info(format!(
                "Biggest {} loss: {v} scores {} against {base}'s {} ({:.1} points lower).",
                kind.name(),
                format::pct(s),
                format::pct(b),
                points
            ))
        } else {
            info(format!(
                "No variant scores below its baseline on {}: the worst, {v}, has {} against {base}'s {}.",
                kind.name(),
                format::pct(s),
                format::pct(b)
            ))
        });
    }
}

fn energy(d: &ReportData, out: &mut Vec<Finding>) {
    let with: Vec<&CaseView> = d.cases.iter().filter(|c| c.case.energy.is_some()).collect();
    if with.is_empty() {
        return;
    }
    let est: Vec<&CaseView> = with
        .iter()
        .copied()
        .filter(|c| c.energy_mj().is_some_and(|e| e.1))
        .collect();
    if est.is_empty() {
        let mut methods: Vec<&str> = with
            .iter()
            .filter_map(|c| c.case.energy.as_ref().map(|e| e.method.as_str()))
            .collect();
        methods.sort();
        methods.dedup();
        out.push(info(format!(
            "Energy is measured by hardware counters ({}) for all {} cases that have it.",
            methods.join(", "),
            with.len()
        )));
        return;
    }
    let e = est[0].case.energy.as_ref().expect("filtered");
    let source = e
        .estimate
        .as_ref()
        .map(|t| {
            format!(
                "; TDP {} W over {} threads, from {}",
                t.tdp_watts, t.tdp_threads, t.source
            )
        })
        .unwrap_or_default();
    let why = e
        .note
        .as_deref()
        .map(|n| format!(" No counter: {n}."))
        .unwrap_or_default();
    out.push(warn(format!(
        "Energy is ESTIMATED for {} of {} cases (method estimate-tdp: worker CPU time x TDP per hardware thread{source}), not measured: compare those figures with each other only.{why}",
        est.len(),
        with.len()
    )));
}

fn cold_start(d: &ReportData, out: &mut Vec<Finding>) {
    let worst = d
        .cases
        .iter()
        .filter_map(|c| {
            let k = c.case.cold_start.as_ref()?;
            let p50 = c.p50()?;
            (p50 > 0.0).then(|| (c, k.first_inference_ms, k.first_inference_ms / p50))
        })
        .max_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((c, first, ratio)) = worst {
        out.push(info(format!(
            "Cold start: the slowest first inference relative to steady state is {} ({} ms, {:.0}x its p50).",
            d.tag(&c.case.id, c.run),
            format::ms(first),
            ratio
        )));
    }
    let unstable = d
        .cases
        .iter()
        .filter(|c| {
            c.case
                .cold_start
                .as_ref()
                .is_some_and(|k| matches!(k.warmup_end, crate::schema::WarmupEnd::MaxTime))
        })
        .count();
    if unstable > 0 {
        out.push(warn(format!(
            "{unstable} case(s) were still speeding up or slowing down when warm-up ended at max_warmup_s."
        )));
    }
}

fn statuses(d: &ReportData, out: &mut Vec<Finding>) {
    let count = |s: CaseStatus| d.cases.iter().filter(|c| c.case.status == s).count();
    let (failed, noisy, skipped, partial) = (
        count(CaseStatus::Failed),
        count(CaseStatus::Noisy),
        count(CaseStatus::Skipped),
        count(CaseStatus::Partial),
    );
    if failed + noisy + skipped + partial == 0 {
        out.push(info(format!(
            "All {} cases measured within the noise bound.",
            d.cases.len()
        )));
        return;
    }
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    if noisy > 0 {
        parts.push(format!("{noisy} noisy"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    if partial > 0 {
        parts.push(format!(
            "{partial} partial (cut short by --quick's time budget)"
        ));
    }
    out.push(warn(format!(
        "{} of {} cases; the table gives each one's reason. Noisy cases did not reach the noise bound: read their figures with their confidence intervals.",
        parts.join(", "),
        d.cases.len()
    )));
}

/// With several runs: how the later runs' medians compare with the first run's, case by case.
fn across_runs(d: &ReportData, out: &mut Vec<Finding>) {
    for (r, run) in d.runs.iter().enumerate().skip(1) {
        let mut ratios: Vec<(String, f64)> = Vec::new();
        for c in d.cases.iter().filter(|c| c.run == r) {
            let Some(p) = c.p50() else { continue };
            let Some(a) = d
                .cases
                .iter()
                .find(|a| a.run == 0 && a.case.id == c.case.id)
                .and_then(|a| a.p50())
            else {
                continue;
            };
            ratios.push((c.case.id.clone(), p / a));
        }
        if ratios.is_empty() {
            out.push(warn(format!(
                "Run {} has no measured case in common with run {}.",
                run.label, d.runs[0].label
            )));
            continue;
        }
        let mut sorted: Vec<f64> = ratios.iter().map(|r| r.1).collect();
        sorted.sort_by(f64::total_cmp);
        let median = crate::stats::percentile(&sorted, 0.5);
        let extreme = ratios
            .iter()
            .max_by(|a, b| a.1.ln().abs().total_cmp(&b.1.ln().abs()))
            .expect("non-empty");
        out.push(info(format!(
            "Run {} against run {}: over {} cases in common, p50 is {:.2}x run {}'s at the median; the largest change is {} at {:.2}x.",
            run.label,
            d.runs[0].label,
            ratios.len(),
            median,
            d.runs[0].label,
            extreme.0,
            extreme.1
        )));
    }
}
