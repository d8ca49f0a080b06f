//! Latency statistics over raw samples. Pure functions: no I/O, no candle.
//!
//! Definitions (docs/methodology.md, "The statistics", repeats them):
//! - percentiles use linear interpolation between order statistics, numpy's default
//!   (`h = (n - 1) q`, `x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])`);
//! - `stdev` is the sample standard deviation (divisor `n - 1`; 0 for a single sample);
//! - confidence intervals are percentile bootstrap intervals (95%), seeded;
//! - Tukey outliers: mild lie beyond 1.5 IQR of the quartiles (but within 3 IQR), severe beyond 3 IQR.
//!   They are counted, never removed.
//!
//! Change tests used by `compare` (docs/check.md explains how they combine into a verdict):
//! - `mann_whitney_u`: two-sided Mann-Whitney U, normal approximation with tie and continuity
//!   corrections;
//! - `bootstrap_percentile_ratio`: seeded bootstrap interval and p-value of the ratio of two
//!   percentiles (candidate / baseline);
//! - `log_ratio_of_means_se`: standard error of the log ratio of two means (delta method).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
/// The complementary error function (statrs), for two-sided p-values of a standard normal
/// statistic `z`: `erfc(|z| / sqrt 2)`.
pub use statrs::function::erf::erfc;

use crate::schema::Summary;

/// Confidence level of every reported interval.
pub const CONFIDENCE: f64 = 0.95;

/// Summarises `samples` (any order). Returns `None` for an empty sample or one holding NaN.
pub fn summarize(samples: &[f64], resamples: usize, seed: u64) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let (outliers_mild, outliers_severe) = tukey_outliers(&sorted);
    Some(Summary {
        count: sorted.len(),
        mean: mean(&sorted),
        stdev: stdev(&sorted),
        min: sorted[0],
        p50: percentile(&sorted, 0.50),
        p90: percentile(&sorted, 0.90),
        p95: percentile(&sorted, 0.95),
        p99: percentile(&sorted, 0.99),
        p999: percentile(&sorted, 0.999),
        max: sorted[sorted.len() - 1],
        p50_ci: bootstrap_percentile_ci(&sorted, 0.50, resamples, seed),
        p99_ci: bootstrap_percentile_ci(&sorted, 0.99, resamples, seed.wrapping_add(1)),
        outliers_mild,
        outliers_severe,
    })
}

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (divisor n - 1); 0 for fewer than two samples.
pub fn stdev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// Percentile `q` in [0, 1] of an ascending slice, numpy's "linear" method.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of an empty sample");
    let (lo, frac) = rank(sorted.len(), q);
    if frac == 0.0 || lo + 1 >= sorted.len() {
        sorted[lo]
    } else {
        sorted[lo] + frac * (sorted[lo + 1] - sorted[lo])
    }
}

/// Zero-based lower index and interpolation fraction of percentile `q` among `n` values.
fn rank(n: usize, q: f64) -> (usize, f64) {
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor();
    (lo as usize, h - lo)
}

/// (mild, severe) Tukey outlier counts of an ascending slice, both tails.
pub fn tukey_outliers(sorted: &[f64]) -> (usize, usize) {
    if sorted.len() < 4 {
        return (0, 0);
    }
    let q1 = percentile(sorted, 0.25);
    let q3 = percentile(sorted, 0.75);
    let iqr = q3 - q1;
    let (mild_lo, mild_hi) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let (severe_lo, severe_hi) = (q1 - 3.0 * iqr, q3 + 3.0 * iqr);
    let mut mild = 0;
    let mut severe = 0;
    for &x in sorted {
        if x < severe_lo || x > severe_hi {
            severe += 1;
        } else if x < mild_lo || x > mild_hi {
            mild += 1;
        }
    }
    (mild, severe)
}

/// 95% percentile-bootstrap confidence interval of percentile `q` of an ascending slice.
///
/// Resampling n values with replacement and taking the k-th smallest is the same, in
/// distribution, as taking `sorted[floor(n U)]` where `U` is the k-th order statistic of n
/// uniforms, which is `Beta(k, n - k + 1)`; the (k+1)-th is `U + (1 - U) Beta(1, n - k)`.
/// Drawing those two numbers per resample gives the exact bootstrap distribution of the
/// interpolated percentile in O(1) per resample instead of O(n), so 10,000 resamples of
/// 100,000 samples take milliseconds. `tests::beta_bootstrap_matches_naive_resampling`
/// checks it against literal resampling.
pub fn bootstrap_percentile_ci(sorted: &[f64], q: f64, resamples: usize, seed: u64) -> [f64; 2] {
    let n = sorted.len();
    assert!(n > 0, "bootstrap of an empty sample");
    if n == 1 || resamples == 0 || sorted[0] == sorted[n - 1] {
        let v = percentile(sorted, q);
        return [v, v];
    }
    let mut stats = bootstrap_percentile_draws(sorted, q, resamples, seed);
    stats.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    [percentile(&stats, tail), percentile(&stats, 1.0 - tail)]
}

/// `resamples` bootstrap replicates of percentile `q` of an ascending slice, in draw order
/// (the Beta order-statistic method of `bootstrap_percentile_ci`). Seeded.
pub fn bootstrap_percentile_draws(sorted: &[f64], q: f64, resamples: usize, seed: u64) -> Vec<f64> {
    let n = sorted.len();
    assert!(n > 0, "bootstrap of an empty sample");
    if n == 1 || sorted[0] == sorted[n - 1] {
        return vec![percentile(sorted, q); resamples];
    }
    let (lo, frac) = rank(n, q);
    let k = (lo + 1) as f64; // one-based order statistic
    let first = Beta::new(k, n as f64 - k + 1.0).expect("k in 1..=n gives valid Beta parameters");
    // The next order statistic is needed only when interpolating (then k < n).
    let next = (frac > 0.0 && lo + 1 < n)
        .then(|| Beta::new(1.0, n as f64 - k).expect("k < n gives valid Beta parameters"));
    let index = |u: f64| ((u * n as f64) as usize).min(n - 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..resamples)
        .map(|_| {
            let u = first.sample(&mut rng);
            let a = sorted[index(u)];
            match &next {
                Some(next) => {
                    let u2 = u + (1.0 - u) * next.sample(&mut rng);
                    a + frac * (sorted[index(u2)] - a)
                }
                None => a,
            }
        })
        .collect()
}

/// Bootstrap of the ratio `percentile(candidate, q) / percentile(baseline, q)`: both samples
/// are resampled independently (`resamples` times each, seeded), and the ratio of each pair
/// of replicates is one draw.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioBootstrap {
    /// Ratio of the two observed percentiles.
    pub ratio: f64,
    /// Two-sided percentile interval of the ratio at `confidence`.
    pub ci: [f64; 2],
    /// Two-sided bootstrap p-value for "the ratio is 1": twice the smaller share of
    /// replicates on either side of 1 (at least `1 / resamples`, at most 1).
    pub p_value: f64,
}

/// `RatioBootstrap` of percentile `q`; both slices ascending and non-empty, baseline > 0.
pub fn bootstrap_percentile_ratio(
    baseline: &[f64],
    candidate: &[f64],
    q: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> RatioBootstrap {
    let resamples = resamples.max(1);
    let b = bootstrap_percentile_draws(baseline, q, resamples, seed);
    let c = bootstrap_percentile_draws(candidate, q, resamples, seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut ratios: Vec<f64> = c.iter().zip(&b).map(|(c, b)| c / b).collect();
    ratios.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let below = ratios.partition_point(|&r| r < 1.0);
    let above = ratios.len() - ratios.partition_point(|&r| r <= 1.0);
    let p_value = (2.0 * below.min(above) as f64 / ratios.len() as f64)
        .max(1.0 / ratios.len() as f64)
        .min(1.0);
    // All replicates equal to 1 (identical constant samples): no evidence of a change.
    let p_value = if below == 0 && above == 0 {
        1.0
    } else {
        p_value
    };
    RatioBootstrap {
        ratio: percentile(candidate, q) / percentile(baseline, q),
        ci: [percentile(&ratios, tail), percentile(&ratios, 1.0 - tail)],
        p_value,
    }
}

/// Mann-Whitney U test of two independent samples (two-sided).
#[derive(Debug, Clone, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: the number of (x, y) pairs with x > y, ties counting one half.
    pub u: f64,
    /// Standardised U (normal approximation, tie and continuity corrected); positive when the
    /// first sample tends to be larger.
    pub z: f64,
    pub p_value: f64,
}

/// Mann-Whitney U test of `x` against `y` with the normal approximation, the tie correction
/// of the variance and a continuity correction of 0.5 (scipy's `mannwhitneyu(x, y,
/// method="asymptotic")`):
/// `U = R_x - n_x (n_x + 1) / 2`, `mu = n_x n_y / 2`,
/// `sigma^2 = n_x n_y / 12 ((N + 1) - sum(t^3 - t) / (N (N - 1)))` over tie groups of size `t`,
/// `z = sign(U - mu) max(|U - mu| - 0.5, 0) / sigma`, `p = erfc(|z| / sqrt 2)`.
/// `None` when either sample is empty or holds NaN.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    if x.is_empty() || y.is_empty() || x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let mut rank_sum_x = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        let from_x = all[i..=j].iter().filter(|(_, is_x)| *is_x).count();
        rank_sum_x += mean_rank * from_x as f64;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let u = rank_sum_x - nx * (nx + 1.0) / 2.0;
    let mu = nx * ny / 2.0;
    let big_n = n as f64;
    let variance = nx * ny / 12.0 * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)));
    if variance <= 0.0 {
        // Every value is the same: no evidence of any difference.
        return Some(MannWhitney {
            u,
            z: 0.0,
            p_value: 1.0,
        });
    }
    let d = u - mu;
    let z = d.signum() * (d.abs() - 0.5).max(0.0) / variance.sqrt();
    Some(MannWhitney {
        u,
        z,
        p_value: erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0),
    })
}

/// Standard normal quantile (inverse CDF) for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    assert!(
        p > 0.0 && p < 1.0,
        "normal_quantile needs 0 < p < 1, got {p}"
    );
    Normal::standard().inverse_cdf(p)
}

/// Standard error of `ln(mean(candidate) / mean(baseline))` by the delta method:
/// `sqrt(s_b^2 / (n_b m_b^2) + s_c^2 / (n_c m_c^2))`. Infinite when a sample has fewer than two
/// values or a non-positive mean.
pub fn log_ratio_of_means_se(baseline: &[f64], candidate: &[f64]) -> f64 {
    let part = |xs: &[f64]| {
        let m = mean(xs);
        if xs.len() < 2 || m.is_nan() || m <= 0.0 {
            return f64::INFINITY;
        }
        let s = stdev(xs);
        s * s / (xs.len() as f64 * m * m)
    };
    (part(baseline) + part(candidate)).sqrt()
}

/// Welch's t-test on the logs of two small samples of positive figures (one per worker
/// process): the ratio of geometric means `candidate / baseline`, its `confidence` interval
/// and the two-sided p-value, with Welch-Satterthwaite degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogWelch {
    pub ratio: f64,
    pub ci: [f64; 2],
    pub p_value: f64,
    pub df: f64,
}

/// `None` when a side has fewer than two values or a value that is not a positive number.
/// When both sides have no spread at all the interval is the point and p is 1 or 0.
pub fn log_welch(baseline: &[f64], candidate: &[f64], confidence: f64) -> Option<LogWelch> {
    let logs = |xs: &[f64]| logs_of_positive(xs, 2);
    let (b, c) = (logs(baseline)?, logs(candidate)?);
    let (nb, nc) = (b.len() as f64, c.len() as f64);
    let (vb, vc) = (stdev(&b).powi(2) / nb, stdev(&c).powi(2) / nc);
    let d = mean(&c) - mean(&b);
    let se = (vb + vc).sqrt();
    let df = if se == 0.0 {
        nb + nc - 2.0
    } else {
        (vb + vc).powi(2) / (vb * vb / (nb - 1.0) + vc * vc / (nc - 1.0))
    };
    let (ratio, ci, p_value) = t_test_on_logs(d, se, df, confidence)?;
    Some(LogWelch {
        ratio,
        ci,
        p_value,
        df,
    })
}

/// The natural logs of `xs`; `None` with fewer than `min_len` values or one that is not a
/// positive number.
fn logs_of_positive(xs: &[f64], min_len: usize) -> Option<Vec<f64>> {
    if xs.len() < min_len || xs.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        return None;
    }
    Some(xs.iter().map(|x| x.ln()).collect())
}

/// `exp(d)` for a difference of logs `d` with standard error `se` on `df` degrees of freedom,
/// its Student-t `confidence` interval and the two-sided p-value. With no spread at all
/// (`se == 0`) the interval is the point and p is 1 or 0.
fn t_test_on_logs(d: f64, se: f64, df: f64, confidence: f64) -> Option<(f64, [f64; 2], f64)> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let ratio = d.exp();
    if se == 0.0 {
        return Some((ratio, [ratio, ratio], if d == 0.0 { 1.0 } else { 0.0 }));
    }
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let q = t.inverse_cdf(0.5 + confidence / 2.0);
    let p = (2.0 * t.cdf(-(d / se).abs())).min(1.0);
    Some((ratio, [(d - q * se).exp(), (d + q * se).exp()], p))
}

/// Analysis of covariance on logs: the ratio `candidate / baseline` of two groups of
/// per-process figures after adjusting each for its process's reference-kernel time (also on
/// logs, one common slope fitted within the groups). When the host slows a process down, its
/// reference kernel slows too; the fitted slope takes that share out of the comparison, so
/// processes from a disturbed spell still count (docs/check.md, "Undisturbed processes: a
/// reference kernel beside the model").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogAncova {
    pub ratio: f64,
    pub ci: [f64; 2],
    pub p_value: f64,
    /// Residual degrees of freedom: processes minus 3 (two group means and the slope).
    pub df: f64,
    /// d ln(figure) / d ln(reference) within the groups: 1 when a figure slows in proportion.
    pub slope: f64,
}

/// `None` when a side has fewer than three figures, a figure or reference time is not a
/// positive number, the lengths differ, or the reference times do not vary within a group
/// (no slope to fit). The interval is Student-t with `n - 3` degrees of freedom and includes
/// the uncertainty of the slope, so groups run at different host speeds get a wider one.
pub fn log_ancova(
    baseline: &[f64],
    baseline_reference: &[f64],
    candidate: &[f64],
    candidate_reference: &[f64],
    confidence: f64,
) -> Option<LogAncova> {
    let logs = |xs: &[f64]| logs_of_positive(xs, 3);
    if baseline.len() != baseline_reference.len() || candidate.len() != candidate_reference.len() {
        return None;
    }
    let (yb, xb) = (logs(baseline)?, logs(baseline_reference)?);
    let (yc, xc) = (logs(candidate)?, logs(candidate_reference)?);
    // Within-group sums of squares and cross products.
    let sums = |x: &[f64], y: &[f64]| {
        let (mx, my) = (mean(x), mean(y));
        x.iter()
            .zip(y)
            .fold((0.0, 0.0, 0.0), |(sxx, sxy, syy), (a, b)| {
                let (dx, dy) = (a - mx, b - my);
                (sxx + dx * dx, sxy + dx * dy, syy + dy * dy)
            })
    };
    let (bxx, bxy, byy) = sums(&xb, &yb);
    let (cxx, cxy, cyy) = sums(&xc, &yc);
    let (sxx, sxy, syy) = (bxx + cxx, bxy + cxy, byy + cyy);
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let (nb, nc) = (yb.len() as f64, yc.len() as f64);
    let gap = mean(&xc) - mean(&xb);
    let d = (mean(&yc) - mean(&yb)) - slope * gap;
    let df = nb + nc - 3.0;
    let residual = (syy - sxy * sxy / sxx).max(0.0) / df;
    let se = (residual * (1.0 / nb + 1.0 / nc + gap * gap / sxx)).sqrt();
    let (ratio, ci, p_value) = t_test_on_logs(d, se, df, confidence)?;
    Some(LogAncova {
        ratio,
        ci,
        p_value,
        df,
        slope,
    })
}

/// Geometric mean of positive figures (NaN when one is not positive).
pub fn geometric_mean(xs: &[f64]) -> f64 {
    if xs.is_empty() || xs.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        return f64::NAN;
    }
    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp()
}

/// Student-t `confidence` interval of the geometric mean (an interval of the mean of logs);
/// `None` with fewer than two values or one that is not positive.
pub fn geometric_mean_ci(xs: &[f64], confidence: f64) -> Option<[f64; 2]> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let logs = logs_of_positive(xs, 2)?;
    let n = logs.len() as f64;
    let se = stdev(&logs) / n.sqrt();
    let q = StudentsT::new(0.0, 1.0, n - 1.0)
        .ok()?
        .inverse_cdf(0.5 + confidence / 2.0);
    let m = mean(&logs);
    Some([(m - q * se).exp(), (m + q * se).exp()])
}

/// Student-t `confidence` interval of the arithmetic mean; `None` with fewer than two
/// finite values.
pub fn mean_ci(xs: &[f64], confidence: f64) -> Option<[f64; 2]> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if xs.len() < 2 || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = xs.len() as f64;
    let se = stdev(xs) / n.sqrt();
    let q = StudentsT::new(0.0, 1.0, n - 1.0)
        .ok()?
        .inverse_cdf(0.5 + confidence / 2.0);
    let m = mean(xs);
    Some([m - q * se, m + q * se])
}

/// Relative half-width of an interval around a point: `(high - low) / 2 / point`.
/// This is the "noise" the sampling loop compares with the suite's `max_noise`.
pub fn relative_half_width(ci: [f64; 2], point: f64) -> f64 {
    if point <= 0.0 {
        return f64::INFINITY;
    }
    (ci[1] - ci[0]) / 2.0 / point
}

#[cfg(test)]
mod tests;
