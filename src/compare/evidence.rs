//! One metric compared on both sides: the test and interval for each kind of evidence.

use super::{blank_row, decide, trim, Evidence, MetricComparison, MetricValue};
use crate::schema::{CheckConfig, RunResult};
use crate::stats;

/// Fewest samples per side for percentile `q`: `min_samples`, and for upper tails enough
/// samples to put 10 beyond the percentile (1000 for p99).
pub fn samples_needed(q: f64, min_samples: usize) -> usize {
    let tail = if q > 0.5 {
        (10.0 / (1.0 - q) - 1e-9).ceil() as usize
    } else {
        0
    };
    min_samples.max(tail)
}

/// Compares one metric present on both sides.
pub fn compare_metric(
    b: &MetricValue<'_>,
    c: &MetricValue<'_>,
    config: &CheckConfig,
    resamples: usize,
    seed: u64,
    reference_floor_us: Option<f64>,
) -> MetricComparison {
    let mut row = blank_row(c, config);
    row.baseline = Some(b.value);
    row.candidate = Some(c.value);
    if b.tag != c.tag {
        let t = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
        row.reason = format!(
            "measured differently ({} vs {}): not comparable",
            t(&b.tag),
            t(&c.tag)
        );
        return row;
    }
    let measured = match (b.evidence, c.evidence) {
        (Evidence::Percentile { samples: bs, q }, Evidence::Percentile { samples: cs, .. }) => {
            percentiles(bs, cs, q, config, resamples, seed)
        }
        (
            Evidence::Rate {
                latency_samples: bs,
            },
            Evidence::Rate {
                latency_samples: cs,
            },
        ) => rates(b.value, c.value, bs, cs, config),
        (
            Evidence::Processes {
                values: bs,
                reference: br,
            },
            Evidence::Processes {
                values: cs,
                reference: cr,
            },
        ) => processes([bs, br], [cs, cr], reference_floor_us, config, &mut row),
        (Evidence::Exact, Evidence::Exact) => exact(b.value, c.value),
        (Evidence::Points, Evidence::Points) => Ok(Measured::exact(c.value - b.value)),
        (
            Evidence::Bracket {
                passing: bl,
                failing: bh,
            },
            Evidence::Bracket {
                passing: cl,
                failing: ch,
            },
        ) => bracket([bl, cl], [bh, ch]),
        _ => Err("the two sides measured this differently".into()),
    };
    let m = match measured {
        Ok(m) => m,
        Err(reason) => {
            row.reason = reason;
            return row;
        }
    };
    row.change = Some(m.change);
    row.change_ci = Some(m.ci);
    row.p_value = Some(m.p);
    row.method = m.method;
    let (verdict, mut reason) = decide(
        c.better,
        m.ci,
        m.p,
        config.significance,
        row.threshold,
        row.kind,
    );
    if let Some(note) = m.note {
        reason.push_str(&note);
    }
    row.verdict = verdict;
    row.reason = reason;
    row
}

/// A change that one kind of evidence could measure. Each test below returns it, or why the
/// data cannot decide (the row is then `inconclusive` with that reason).
struct Measured {
    change: f64,
    ci: [f64; 2],
    p: f64,
    method: &'static str,
    /// Appended to the verdict's reason.
    note: Option<String>,
}

impl Measured {
    fn new(change: f64, ci: [f64; 2], p: f64, method: &'static str) -> Self {
        Measured {
            change,
            ci,
            p,
            method,
            note: None,
        }
    }

    /// A change known exactly: the interval is the change itself.
    fn exact(change: f64) -> Self {
        Measured::new(change, [change, change], exact_p(change), "exact")
    }
}

fn too_few(bs: usize, cs: usize, needed: usize) -> String {
    format!("too few samples ({bs} vs {cs}; {needed} needed per side)")
}

/// Percentile `q` of two latency samples: the seeded bootstrap of the ratio gives the
/// interval; the median's p-value comes from Mann-Whitney, other percentiles' from the
/// bootstrap.
fn percentiles(
    bs: &[f64],
    cs: &[f64],
    q: f64,
    config: &CheckConfig,
    resamples: usize,
    seed: u64,
) -> Result<Measured, String> {
    let needed = samples_needed(q, config.min_samples);
    if bs.len() < needed || cs.len() < needed {
        return Err(too_few(bs.len(), cs.len(), needed));
    }
    let sort = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        v
    };
    let (bs, cs) = (sort(bs), sort(cs));
    if bs.iter().chain(&cs).any(|x| !x.is_finite() || *x <= 0.0) {
        return Err("samples that are not positive numbers".into());
    }
    let alpha = config.significance;
    let r = stats::bootstrap_percentile_ratio(&bs, &cs, q, 1.0 - alpha, resamples, seed);
    let (p, method) = if q == 0.5 {
        let p = stats::mann_whitney_u(&cs, &bs)
            .map(|m| m.p_value)
            .unwrap_or(1.0);
        (p, "mann_whitney+bootstrap")
    } else {
        (r.p_value, "bootstrap")
    };
    Ok(Measured::new(
        r.ratio - 1.0,
        [r.ci[0] - 1.0, r.ci[1] - 1.0],
        p,
        method,
    ))
}

/// A rate (`b`, `c`) whose change mirrors the mean latency's: the delta method on the log
/// ratio of the latency samples' means gives its standard error.
fn rates(b: f64, c: f64, bs: &[f64], cs: &[f64], config: &CheckConfig) -> Result<Measured, String> {
    let needed = config.min_samples;
    if bs.len() < needed || cs.len() < needed {
        return Err(too_few(bs.len(), cs.len(), needed));
    }
    if !(b > 0.0 && c > 0.0) {
        return Err("a rate that is not positive".into());
    }
    let ratio = c / b;
    let se = stats::log_ratio_of_means_se(bs, cs);
    if !se.is_finite() {
        return Err("no spread estimate for the rate".into());
    }
    let z = stats::normal_quantile(1.0 - config.significance / 2.0);
    let p = if se > 0.0 {
        stats::erfc(ratio.ln().abs() / se / std::f64::consts::SQRT_2).min(1.0)
    } else if ratio == 1.0 {
        1.0
    } else {
        0.0
    };
    Ok(Measured::new(
        ratio - 1.0,
        [ratio * (-z * se).exp() - 1.0, ratio * (z * se).exp() - 1.0],
        p,
        "delta_method",
    ))
}

/// One figure per process and side (`[values, reference times]`): Welch's t on the logs of
/// the undisturbed processes, or of all of them when no reference times were recorded; with
/// too few undisturbed ones, every process adjusted for its reference time (ANCOVA). The
/// row's baseline and candidate become the geometric means of the processes compared.
fn processes(
    [bs, br]: [&[f64]; 2],
    [cs, cr]: [&[f64]; 2],
    reference_floor_us: Option<f64>,
    config: &CheckConfig,
    row: &mut MetricComparison,
) -> Result<Measured, String> {
    let confidence = 1.0 - config.significance;
    let (baseline, candidate, method, note) = match undisturbed(
        bs,
        br,
        cs,
        cr,
        reference_floor_us,
        config,
    ) {
        Undisturbed::Selected {
            baseline,
            candidate,
        } => {
            let note = format!(
                "; undisturbed processes: {} of {} vs {} of {}",
                baseline.len(),
                bs.len(),
                candidate.len(),
                cs.len()
            );
            row.baseline = Some(stats::geometric_mean(&baseline));
            row.candidate = Some(stats::geometric_mean(&candidate));
            (
                baseline,
                candidate,
                "welch_undisturbed_processes",
                Some(note),
            )
        }
        Undisturbed::NoReference => (bs.to_vec(), cs.to_vec(), "welch_processes", None),
        // The host was slow through much of a run: rather than drop the slow
        // processes, adjust every process for its own reference time.
        Undisturbed::TooFew { reason, kept } => {
            let a = stats::log_ancova(bs, br, cs, cr, confidence).ok_or(reason)?;
            row.baseline = Some(stats::geometric_mean(bs));
            row.candidate = Some(stats::geometric_mean(cs));
            let mut m = Measured::new(
                a.ratio - 1.0,
                [a.ci[0] - 1.0, a.ci[1] - 1.0],
                a.p_value,
                "ancova_reference",
            );
            m.note = Some(format!(
                    "; only {} of {} vs {} of {} processes undisturbed: all compared after adjusting for the reference-kernel time (slope {:.2})",
                    kept[0],
                    bs.len(),
                    kept[1],
                    cs.len(),
                    a.slope
                ));
            return Ok(m);
        }
    };
    let w = stats::log_welch(&baseline, &candidate, confidence).ok_or_else(|| {
        format!(
            "per-process figures unusable ({} vs {} processes; at least 2 positive figures needed per side)",
            baseline.len(),
            candidate.len()
        )
    })?;
    let mut m = Measured::new(
        w.ratio - 1.0,
        [w.ci[0] - 1.0, w.ci[1] - 1.0],
        w.p_value,
        method,
    );
    m.note = note;
    Ok(m)
}

/// One exact figure per side, compared relative to the baseline.
fn exact(b: f64, c: f64) -> Result<Measured, String> {
    let change = if b == c {
        0.0
    } else if b > 0.0 {
        c / b - 1.0
    } else {
        return Err("the baseline value is zero".into());
    };
    Ok(Measured::exact(change))
}

/// Max-QPS searches: each side's true maximum lies in `[passing, failing)`, so the ratio
/// lies in `[c_pass / b_fail, c_fail / b_pass)`.
fn bracket([bl, cl]: [f64; 2], [bh, ch]: [Option<f64>; 2]) -> Result<Measured, String> {
    let (Some(bh), Some(ch)) = (bh, ch) else {
        return Err("a search found no failing rate, so its maximum is not bracketed".into());
    };
    if !(bl > 0.0 && cl > 0.0) {
        return Err("a rate that is not positive".into());
    }
    let ci = [cl / bh - 1.0, ch / bl - 1.0];
    let p = if ci[0] > 0.0 || ci[1] < 0.0 { 0.0 } else { 1.0 };
    Ok(Measured::new(cl / bl - 1.0, ci, p, "bracket"))
}

/// Fewest undisturbed processes per side for a per-process verdict.
pub const MIN_UNDISTURBED: usize = 3;

enum Undisturbed {
    /// The figures of the undisturbed processes of each side.
    Selected {
        baseline: Vec<f64>,
        candidate: Vec<f64>,
    },
    /// Too few undisturbed processes on a side: why, and how many each side kept.
    TooFew { reason: String, kept: [usize; 2] },
    /// A side has no reference times (a run from before they existed): all processes count.
    NoReference,
}

/// Keeps the processes whose reference kernel ran within `reference_band` of the fastest
/// reference time of both runs (`floor_us`): the machine was at full speed around their
/// window. The reference is plain arithmetic that the model under test does not touch, so
/// the choice does not depend on the figures compared (docs/check.md, "Undisturbed
/// processes: a reference kernel beside the model").
fn undisturbed(
    bs: &[f64],
    br: &[f64],
    cs: &[f64],
    cr: &[f64],
    floor_us: Option<f64>,
    config: &CheckConfig,
) -> Undisturbed {
    let Some(floor) = floor_us.filter(|f| *f > 0.0) else {
        return Undisturbed::NoReference;
    };
    if br.len() != bs.len() || cr.len() != cs.len() {
        return Undisturbed::NoReference;
    }
    let limit = floor * (1.0 + config.reference_band);
    let keep = |values: &[f64], reference: &[f64]| -> Vec<f64> {
        values
            .iter()
            .zip(reference)
            .filter(|(_, r)| **r <= limit)
            .map(|(v, _)| *v)
            .collect()
    };
    let (baseline, candidate) = (keep(bs, br), keep(cs, cr));
    if baseline.len() < MIN_UNDISTURBED || candidate.len() < MIN_UNDISTURBED {
        return Undisturbed::TooFew {
            reason: format!(
                "the machine was disturbed: only {} of {} baseline and {} of {} candidate processes ran with the reference kernel within {}% of its fastest ({:.2} µs), and the figures could not be adjusted for it; {MIN_UNDISTURBED} per side are needed: re-run on a quieter machine or with more processes",
                baseline.len(),
                bs.len(),
                candidate.len(),
                cs.len(),
                trim(100.0 * config.reference_band),
                floor
            ),
            kept: [baseline.len(), candidate.len()],
        };
    }
    Undisturbed::Selected {
        baseline,
        candidate,
    }
}

/// The fastest reference-kernel time of any process of either run (µs), when both runs
/// recorded them.
pub fn reference_floor_us(baseline: &RunResult, candidate: &RunResult) -> Option<f64> {
    let floor = |run: &RunResult| {
        run.cases
            .iter()
            .filter_map(|c| c.processes.as_ref())
            .flat_map(|p| p.reference_us.iter().copied())
            .filter(|r| r.is_finite() && *r > 0.0)
            .reduce(f64::min)
    };
    Some(floor(baseline)?.min(floor(candidate)?))
}

fn exact_p(change: f64) -> f64 {
    if change == 0.0 {
        1.0
    } else {
        0.0
    }
}
