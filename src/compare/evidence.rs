//! One metric compared on both sides: the test and interval for each kind of evidence.

use super::{blank_row, decide, trim, Evidence, MetricComparison, MetricValue};
use crate::results::RunResult;
use crate::stats;
use crate::suite::CheckConfig;

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
    let alpha = config.significance;
    // Appended to the verdict's reason.
    let mut note: Option<String> = None;
    let inconclusive = |mut row: MetricComparison, reason: String| {
        row.reason = reason;
        row
    };
    if b.tag != c.tag {
        let t = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
        return inconclusive(
            row,
            format!(
                "measured differently ({} vs {}): not comparable",
                t(&b.tag),
                t(&c.tag)
            ),
        );
    }
    let (change, ci, p, method) = match (b.evidence, c.evidence) {
        (Evidence::Percentile { samples: bs, q }, Evidence::Percentile { samples: cs, .. }) => {
            let needed = samples_needed(q, config.min_samples);
            if bs.len() < needed || cs.len() < needed {
                return inconclusive(
                    row,
                    format!(
                        "too few samples ({} vs {}; {} needed per side)",
                        bs.len(),
                        cs.len(),
                        needed
                    ),
                );
            }
            let sort = |xs: &[f64]| {
                let mut v = xs.to_vec();
                v.sort_unstable_by(f64::total_cmp);
                v
            };
            let (bs, cs) = (sort(bs), sort(cs));
            if bs.iter().chain(&cs).any(|x| !x.is_finite() || *x <= 0.0) {
                return inconclusive(row, "samples that are not positive numbers".into());
            }
            let r = stats::bootstrap_percentile_ratio(&bs, &cs, q, 1.0 - alpha, resamples, seed);
            let (p, method) = if q == 0.5 {
                let p = stats::mann_whitney_u(&cs, &bs)
                    .map(|m| m.p_value)
                    .unwrap_or(1.0);
                (p, "mann_whitney+bootstrap")
            } else {
                (r.p_value, "bootstrap")
            };
            (r.ratio - 1.0, [r.ci[0] - 1.0, r.ci[1] - 1.0], p, method)
        }
        (
            Evidence::Rate {
                latency_samples: bs,
            },
            Evidence::Rate {
                latency_samples: cs,
            },
        ) => {
            let needed = config.min_samples;
            if bs.len() < needed || cs.len() < needed {
                return inconclusive(
                    row,
                    format!(
                        "too few samples ({} vs {}; {} needed per side)",
                        bs.len(),
                        cs.len(),
                        needed
                    ),
                );
            }
            if !(b.value > 0.0 && c.value > 0.0) {
                return inconclusive(row, "a rate that is not positive".into());
            }
            let ratio = c.value / b.value;
            let se = stats::log_ratio_of_means_se(bs, cs);
            if !se.is_finite() {
                return inconclusive(row, "no spread estimate for the rate".into());
            }
            let z = stats::normal_quantile(1.0 - alpha / 2.0);
            let p = if se > 0.0 {
                stats::erfc(ratio.ln().abs() / se / std::f64::consts::SQRT_2).min(1.0)
            } else if ratio == 1.0 {
                1.0
            } else {
                0.0
            };
            (
                ratio - 1.0,
                [ratio * (-z * se).exp() - 1.0, ratio * (z * se).exp() - 1.0],
                p,
                "delta_method",
            )
        }
        (
            Evidence::Processes {
                values: bs,
                reference: br,
            },
            Evidence::Processes {
                values: cs,
                reference: cr,
            },
        ) => {
            let selected = match undisturbed(bs, br, cs, cr, reference_floor_us, config) {
                Undisturbed::Selected {
                    baseline,
                    candidate,
                } => {
                    note = Some(format!(
                        "; undisturbed processes: {} of {} vs {} of {}",
                        baseline.len(),
                        bs.len(),
                        candidate.len(),
                        cs.len()
                    ));
                    row.baseline = Some(stats::geometric_mean(&baseline));
                    row.candidate = Some(stats::geometric_mean(&candidate));
                    Ok((baseline, candidate, "welch_undisturbed_processes"))
                }
                Undisturbed::TooFew { reason, kept } => Err((reason, kept)),
                Undisturbed::NoReference => Ok((bs.to_vec(), cs.to_vec(), "welch_processes")),
            };
            match selected {
                Ok((bs, cs, method)) => match stats::log_welch(&bs, &cs, 1.0 - alpha) {
                    Some(w) => (
                        w.ratio - 1.0,
                        [w.ci[0] - 1.0, w.ci[1] - 1.0],
                        w.p_value,
                        method,
                    ),
                    None => {
                        return inconclusive(
                            row,
                            format!(
                                "per-process figures unusable ({} vs {} processes; at least 2 positive figures needed per side)",
                                bs.len(),
                                cs.len()
                            ),
                        )
                    }
                },
                // The host was slow through much of a run: rather than drop the slow
                // processes, adjust every process for its own reference time.
                Err((reason, kept)) => {
                    let Some(a) = stats::log_ancova(bs, br, cs, cr, 1.0 - alpha) else {
                        return inconclusive(row, reason);
                    };
                    note = Some(format!(
                        "; only {} of {} vs {} of {} processes undisturbed: all compared after adjusting for the reference-kernel time (slope {:.2})",
                        kept[0],
                        bs.len(),
                        kept[1],
                        cs.len(),
                        a.slope
                    ));
                    row.baseline = Some(stats::geometric_mean(bs));
                    row.candidate = Some(stats::geometric_mean(cs));
                    (
                        a.ratio - 1.0,
                        [a.ci[0] - 1.0, a.ci[1] - 1.0],
                        a.p_value,
                        "ancova_reference",
                    )
                }
            }
        }
        (Evidence::Exact, Evidence::Exact) => {
            let change = if b.value == c.value {
                0.0
            } else if b.value > 0.0 {
                c.value / b.value - 1.0
            } else {
                return inconclusive(row, "the baseline value is zero".into());
            };
            (change, [change, change], exact_p(change), "exact")
        }
        (Evidence::Points, Evidence::Points) => {
            let change = c.value - b.value;
            (change, [change, change], exact_p(change), "exact")
        }
        (
            Evidence::Bracket {
                passing: bl,
                failing: bh,
            },
            Evidence::Bracket {
                passing: cl,
                failing: ch,
            },
        ) => {
            let (Some(bh), Some(ch)) = (bh, ch) else {
                return inconclusive(
                    row,
                    "a search found no failing rate, so its maximum is not bracketed".into(),
                );
            };
            if !(bl > 0.0 && cl > 0.0) {
                return inconclusive(row, "a rate that is not positive".into());
            }
            // Each true maximum lies in [passing, failing): the ratio in [cl/bh, ch/bl).
            let ci = [cl / bh - 1.0, ch / bl - 1.0];
            let p = if ci[0] > 0.0 || ci[1] < 0.0 { 0.0 } else { 1.0 };
            (cl / bl - 1.0, ci, p, "bracket")
        }
        _ => return inconclusive(row, "the two sides measured this differently".into()),
    };
    row.change = Some(change);
    row.change_ci = Some(ci);
    row.p_value = Some(p);
    row.method = method;
    let (verdict, mut reason) = decide(c.better, ci, p, alpha, row.threshold, row.kind);
    if let Some(note) = note {
        reason.push_str(&note);
    }
    row.verdict = verdict;
    row.reason = reason;
    row
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
/// processes").
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
