//! Latency statistics over raw samples. Pure functions: no I/O, no candle.
//!
//! Definitions (README "How each number is computed" repeats them):
//! - percentiles use linear interpolation between order statistics, numpy's default
//!   (`h = (n - 1) q`, `x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])`);
//! - `stdev` is the sample standard deviation (divisor `n - 1`; 0 for a single sample);
//! - confidence intervals are percentile bootstrap intervals (95%), seeded;
//! - Tukey outliers: mild lie beyond 1.5 IQR of the quartiles (but within 3 IQR), severe beyond 3 IQR.
//!   They are counted, never removed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

/// Number of bootstrap resamples used for the reported confidence intervals.
pub const DEFAULT_RESAMPLES: usize = 10_000;
/// Confidence level of every reported interval.
pub const CONFIDENCE: f64 = 0.95;

/// Summary of a latency sample. Units are whatever the samples are in (the run file uses ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub stdev: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// 95% bootstrap confidence interval of the median, `[low, high]`.
    pub p50_ci: [f64; 2],
    /// 95% bootstrap confidence interval of the 99th percentile, `[low, high]`.
    pub p99_ci: [f64; 2],
    pub outliers_mild: usize,
    pub outliers_severe: usize,
}

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
    let (lo, frac) = rank(n, q);
    let k = (lo + 1) as f64; // one-based order statistic
    let first = Beta::new(k, n as f64 - k + 1.0).expect("k in 1..=n gives valid Beta parameters");
    // The next order statistic is needed only when interpolating (then k < n).
    let next = (frac > 0.0 && lo + 1 < n)
        .then(|| Beta::new(1.0, n as f64 - k).expect("k < n gives valid Beta parameters"));
    let index = |u: f64| ((u * n as f64) as usize).min(n - 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..resamples)
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
        .collect();
    stats.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    [percentile(&stats, tail), percentile(&stats, 1.0 - tail)]
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
mod tests {
    use super::*;
    use rand::Rng;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn percentiles_match_numpy_linear_on_odd_count() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 95, 99, 99.9]) ->
        // [3.0, 7.6, 8.8, 9.76, 9.976]
        let xs = [1.0, 2.0, 3.0, 4.0, 10.0];
        let expected = [
            (0.5, 3.0),
            (0.9, 7.6),
            (0.95, 8.8),
            (0.99, 9.76),
            (0.999, 9.976),
        ];
        for (q, want) in expected {
            assert!(
                close(percentile(&xs, q), want),
                "q={q}: {}",
                percentile(&xs, q)
            );
        }
    }

    #[test]
    fn percentiles_match_numpy_linear_on_even_count_with_ties() {
        // numpy.percentile([1, 2, 2, 2, 5, 9], [25, 50, 75, 90, 99]) ->
        // [2.0, 2.0, 4.25, 7.0, 8.8]
        let xs = [1.0, 2.0, 2.0, 2.0, 5.0, 9.0];
        let expected = [
            (0.25, 2.0),
            (0.5, 2.0),
            (0.75, 4.25),
            (0.9, 7.0),
            (0.99, 8.8),
        ];
        for (q, want) in expected {
            assert!(
                close(percentile(&xs, q), want),
                "q={q}: {}",
                percentile(&xs, q)
            );
        }
        assert!(close(percentile(&[1.0, 3.0, 7.0, 8.0], 0.5), 5.0));
    }

    #[test]
    fn summary_by_hand_on_a_small_sample() {
        let s = summarize(&[4.0, 1.0, 3.0, 2.0], 1000, 7).unwrap();
        assert_eq!(s.count, 4);
        assert!(close(s.mean, 2.5));
        // sample variance = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
        assert!(close(s.stdev, (5.0f64 / 3.0).sqrt()));
        assert_eq!((s.min, s.max), (1.0, 4.0));
        assert!(close(s.p50, 2.5));
        assert!(close(s.p90, 3.7));
        assert!(close(s.p99, 3.97));
        assert!(s.p50_ci[0] <= s.p50 && s.p50 <= s.p50_ci[1]);
    }

    #[test]
    fn single_sample_and_all_equal_samples_are_degenerate() {
        let one = summarize(&[2.5], 1000, 1).unwrap();
        assert_eq!(one.stdev, 0.0);
        assert_eq!((one.p50, one.p99, one.p999), (2.5, 2.5, 2.5));
        assert_eq!(one.p50_ci, [2.5, 2.5]);
        assert_eq!((one.outliers_mild, one.outliers_severe), (0, 0));

        let same = summarize(&[7.0; 50], 1000, 1).unwrap();
        assert_eq!(same.stdev, 0.0);
        assert_eq!(same.p50_ci, [7.0, 7.0]);
        assert_eq!(same.p99_ci, [7.0, 7.0]);
        assert_eq!((same.outliers_mild, same.outliers_severe), (0, 0));
    }

    #[test]
    fn empty_or_nan_samples_have_no_summary() {
        assert!(summarize(&[], 10, 1).is_none());
        assert!(summarize(&[1.0, f64::NAN], 10, 1).is_none());
    }

    #[test]
    fn tukey_counts_mild_and_severe_separately() {
        // Sorted: [1, 2, 3, 3, 4, 5, 6, 7, 14, 40]; q1 = 3, q3 = 6.75 (numpy linear),
        // iqr = 3.75: mild fences [-2.625, 12.375], severe fences [-8.25, 18]. 14 is mild,
        // 40 is severe.
        let mut xs = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 14.0, 40.0, 3.0];
        xs.sort_by(f64::total_cmp);
        assert!(close(percentile(&xs, 0.25), 3.0));
        let (mild, severe) = tukey_outliers(&xs);
        assert_eq!((mild, severe), (1, 1));
    }

    #[test]
    fn bootstrap_is_seeded_and_contains_the_estimate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut xs: Vec<f64> = (0..2000).map(|_| 1.0 + rng.random::<f64>()).collect();
        xs.sort_by(f64::total_cmp);
        let a = bootstrap_percentile_ci(&xs, 0.5, 2000, 11);
        let b = bootstrap_percentile_ci(&xs, 0.5, 2000, 11);
        assert_eq!(a, b);
        let p50 = percentile(&xs, 0.5);
        assert!(a[0] < p50 && p50 < a[1], "{a:?} vs {p50}");
        // Uniform(1,2): the median's standard error is about 1/(2 sqrt(n) f) = 0.011, so the
        // 95% interval is about 0.044 wide.
        assert!(a[1] - a[0] > 0.02 && a[1] - a[0] < 0.08, "{a:?}");
    }

    #[test]
    fn beta_bootstrap_matches_naive_resampling() {
        // Literal bootstrap: resample with replacement, sort, take the percentile.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut xs: Vec<f64> = (0..301)
            .map(|_| (rng.random::<f64>() * 3.0).exp())
            .collect();
        xs.sort_by(f64::total_cmp);
        for q in [0.5, 0.9, 0.99] {
            let mut stats: Vec<f64> = (0..4000)
                .map(|_| {
                    let mut r: Vec<f64> = (0..xs.len())
                        .map(|_| xs[rng.random_range(0..xs.len())])
                        .collect();
                    r.sort_by(f64::total_cmp);
                    percentile(&r, q)
                })
                .collect();
            stats.sort_by(f64::total_cmp);
            let naive = [percentile(&stats, 0.025), percentile(&stats, 0.975)];
            let fast = bootstrap_percentile_ci(&xs, q, 4000, 9);
            let width = naive[1] - naive[0];
            for i in 0..2 {
                assert!(
                    (naive[i] - fast[i]).abs() < 0.15 * width,
                    "q={q}: naive {naive:?} fast {fast:?}"
                );
            }
        }
    }

    #[test]
    fn relative_half_width_of_an_interval() {
        assert!(close(relative_half_width([9.0, 11.0], 10.0), 0.1));
        assert_eq!(relative_half_width([0.0, 1.0], 0.0), f64::INFINITY);
    }
}
