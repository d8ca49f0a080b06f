//! One metric compared on both sides: the test and interval for each kind of evidence.

use super::{blank_row, decide, trim, Evidence, MetricComparison, MetricValue, Verdict};
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
                run_queue: bq,
            },
            Evidence::Processes {
                values: cs,
                reference: cr,
                run_queue: cq,
            },
        ) => processes(
            Side::new(bs, br, bq),
            Side::new(cs, cr, cq),
            reference_floor_us,
            config,
            &mut row,
        ),
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
    // Adjusted for the reference because too few processes ran undisturbed, and still
    // undecided: another measurement, not a pass, is what decides it.
    row.measure_again &= verdict == Verdict::Inconclusive;
    if row.measure_again {
        reason.push_str("; too few undisturbed processes to decide: measure again");
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

/// One side's per-process figures: the values compared, each process's reference-kernel
/// time (µs) and its run-queue share, the last two empty when the run lacks them.
#[derive(Clone, Copy)]
struct Side<'a> {
    values: &'a [f64],
    reference: &'a [f64],
    run_queue: &'a [f64],
}

impl<'a> Side<'a> {
    fn new(values: &'a [f64], reference: &'a [f64], run_queue: &'a [f64]) -> Self {
        Side {
            values,
            reference,
            run_queue,
        }
    }

    /// Whether process `i` was kept off its CPU by other work for more than `max_share` of
    /// its window. A run without the figures (or with a list of another length) has none.
    fn held_off(&self, i: usize, max_share: f64) -> bool {
        self.run_queue.len() == self.values.len() && self.run_queue[i] > max_share
    }

    /// The processes not held off their CPU: their values and reference times.
    fn free(&self, max_share: f64) -> (Vec<f64>, Vec<f64>) {
        let keep = (0..self.values.len()).filter(|&i| !self.held_off(i, max_share));
        if self.reference.len() == self.values.len() {
            keep.map(|i| (self.values[i], self.reference[i])).unzip()
        } else {
            (keep.map(|i| self.values[i]).collect(), Vec::new())
        }
    }
}

/// One figure per process and side: Welch's t on the logs of the undisturbed processes (or
/// of all of them not held off their CPU when a side has no reference times); with too
/// few undisturbed ones, those not held off their CPU adjusted for their reference time
/// (ANCOVA); with too few of those, the row says to measure again. The row's baseline and
/// candidate become the geometric means of the processes compared.
fn processes(
    b: Side<'_>,
    c: Side<'_>,
    reference_floor_us: Option<f64>,
    config: &CheckConfig,
    row: &mut MetricComparison,
) -> Result<Measured, String> {
    let confidence = 1.0 - config.significance;
    let (baseline, candidate, method, note) = match undisturbed(b, c, reference_floor_us, config) {
        Undisturbed::Selected {
            baseline,
            candidate,
        } => {
            let note = format!(
                "; undisturbed processes: {} of {} vs {} of {}",
                baseline.len(),
                b.values.len(),
                candidate.len(),
                c.values.len()
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
        Undisturbed::NoReference {
            baseline,
            candidate,
        } => {
            let held = [
                b.values.len() - baseline.len(),
                c.values.len() - candidate.len(),
            ];
            let note = (held != [0, 0]).then(|| {
                format!(
                    "; {} vs {} processes held off their CPU by other work left out",
                    held[0], held[1]
                )
            });
            (baseline, candidate, "welch_processes", note)
        }
        // The host was slow through much of a run: rather than drop the slow processes,
        // adjust each one not held off its CPU for its own reference time.
        Undisturbed::TooFew {
            reason,
            kept,
            measure_again,
        } => {
            let (bf, bfr) = b.free(config.max_run_queue_share);
            let (cf, cfr) = c.free(config.max_run_queue_share);
            row.measure_again = measure_again;
            let Some(a) = stats::log_ancova(&bf, &bfr, &cf, &cfr, confidence) else {
                return Err(reason);
            };
            row.baseline = Some(stats::geometric_mean(&bf));
            row.candidate = Some(stats::geometric_mean(&cf));
            let mut m = Measured::new(
                a.ratio - 1.0,
                [a.ci[0] - 1.0, a.ci[1] - 1.0],
                a.p_value,
                "ancova_reference",
            );
            let compared = if bf.len() == b.values.len() && cf.len() == c.values.len() {
                "all".to_string()
            } else {
                format!(
                    "the {} vs {} not held off their CPU by other work",
                    bf.len(),
                    cf.len()
                )
            };
            m.note = Some(format!(
                "; only {} of {} vs {} of {} processes undisturbed: {compared} compared after adjusting for the reference-kernel time (slope {:.2})",
                kept[0],
                b.values.len(),
                kept[1],
                c.values.len(),
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
    /// Too few undisturbed processes on a side: why (should the adjustment be impossible
    /// too), how many each side kept, and whether measuring again could help (each side
    /// ran enough processes, too few of them undisturbed).
    TooFew {
        reason: String,
        kept: [usize; 2],
        measure_again: bool,
    },
    /// A side has no reference times (a run from before they existed): every process not
    /// held off its CPU counts.
    NoReference {
        baseline: Vec<f64>,
        candidate: Vec<f64>,
    },
}

/// Keeps the processes whose reference kernel ran within `reference_band` of the fastest
/// reference time of both runs (`floor_us`), so the machine was at full speed around their
/// window, and that other work kept off their CPU for at most `max_run_queue_share` of it,
/// so no neighbour preempted them between reference readings. Both signals come from the
/// machine, never from the figures compared, so the choice cannot favour either side
/// (docs/check.md, "Undisturbed processes: a reference kernel beside the model").
fn undisturbed(
    b: Side<'_>,
    c: Side<'_>,
    floor_us: Option<f64>,
    config: &CheckConfig,
) -> Undisturbed {
    let max_share = config.max_run_queue_share;
    let floor = floor_us
        .filter(|f| *f > 0.0)
        .filter(|_| b.reference.len() == b.values.len() && c.reference.len() == c.values.len());
    let Some(floor) = floor else {
        return Undisturbed::NoReference {
            baseline: b.free(max_share).0,
            candidate: c.free(max_share).0,
        };
    };
    let limit = floor * (1.0 + config.reference_band);
    let keep = |s: Side<'_>| -> Vec<f64> {
        (0..s.values.len())
            .filter(|&i| s.reference[i] <= limit && !s.held_off(i, max_share))
            .map(|i| s.values[i])
            .collect()
    };
    let (baseline, candidate) = (keep(b), keep(c));
    if baseline.len() >= MIN_UNDISTURBED && candidate.len() >= MIN_UNDISTURBED {
        return Undisturbed::Selected {
            baseline,
            candidate,
        };
    }
    let held = |s: Side<'_>| {
        (0..s.values.len())
            .filter(|&i| s.held_off(i, max_share))
            .count()
    };
    let held_note = if b.run_queue.is_empty() && c.run_queue.is_empty() {
        String::new()
    } else {
        format!(
            " and were held off their CPU by other work for at most {}% of their window ({} and {} were held off longer)",
            trim(100.0 * max_share),
            held(b),
            held(c)
        )
    };
    // With fewer processes than that on a side, no machine could do better: more
    // processes are needed, not another try.
    let measure_again = b.values.len() >= MIN_UNDISTURBED && c.values.len() >= MIN_UNDISTURBED;
    let what_to_do = if measure_again {
        "measure again, on a quieter machine or later (`run --retry-disturbed N` measures such cases again before writing the run)"
    } else {
        "re-run on a quieter machine or with more processes"
    };
    Undisturbed::TooFew {
        reason: format!(
            "the machine was disturbed: only {} of {} baseline and {} of {} candidate processes ran with the reference kernel within {}% of its fastest ({:.2} µs){held_note}, and the figures could not be adjusted for it; {MIN_UNDISTURBED} per side are needed: {what_to_do}",
            baseline.len(),
            b.values.len(),
            candidate.len(),
            c.values.len(),
            trim(100.0 * config.reference_band),
            floor
        ),
        kept: [baseline.len(), candidate.len()],
        measure_again,
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
