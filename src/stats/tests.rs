use super::*;
use rand::Rng;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn log_welch_matches_a_hand_computed_case() {
    // ln values: b = [0, ln 2] (mean ln2/2), c = [ln 2, ln 4] (mean 3 ln2/2); d = ln 2.
    // Each variance of the logs = (ln 2)^2 / 2, so se = ln 2 / sqrt 2 and t = sqrt 2;
    // df = 2 by Welch-Satterthwaite for equal sizes and variances.
    let w = log_welch(&[1.0, 2.0], &[2.0, 4.0], 0.95).unwrap();
    assert!(close(w.ratio, 2.0), "{w:?}");
    assert!(close(w.df, 2.0), "{w:?}");
    // Two-sided p with 2 df has a closed form: p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(2)/2.
    assert!(
        (w.p_value - (1.0 - 2f64.sqrt() / 2.0)).abs() < 1e-9,
        "{w:?}"
    );
    // 97.5% quantile of t with 2 df is 4.302653; ci = exp(ln2 +- q ln2/sqrt2).
    let q = 4.302_652_729_911_275;
    let se = 2f64.ln() / 2f64.sqrt();
    assert!((w.ci[0] - (2f64.ln() - q * se).exp()).abs() < 1e-6, "{w:?}");
    assert!((w.ci[1] - (2f64.ln() + q * se).exp()).abs() < 1e-6, "{w:?}");
}

#[test]
fn log_welch_refuses_too_few_or_non_positive_values() {
    assert!(log_welch(&[1.0], &[1.0, 2.0], 0.99).is_none());
    assert!(log_welch(&[1.0, 0.0], &[1.0, 2.0], 0.99).is_none());
    assert!(log_welch(&[1.0, f64::NAN], &[1.0, 2.0], 0.99).is_none());
    let same = log_welch(&[3.0, 3.0], &[3.0, 3.0], 0.99).unwrap();
    assert_eq!((same.ratio, same.p_value), (1.0, 1.0));
    assert!(close(geometric_mean(&[1.0, 4.0]), 2.0));
    assert!(geometric_mean(&[1.0, -4.0]).is_nan());
}

#[test]
fn log_ancova_matches_least_squares_from_numpy() {
    // Expected values: numpy.linalg.lstsq on [1, group, ln ref] against ln figure, the
    // group coefficient's 99% Student-t interval (df 6) and p from scipy.stats.t.
    let (b, br) = ([0.30, 0.33, 0.36, 0.31], [62.0, 66.0, 70.0, 63.0]);
    let (c, cr) = (
        [0.34, 0.40, 0.35, 0.37, 0.41],
        [63.0, 69.0, 62.5, 66.0, 71.0],
    );
    let a = log_ancova(&b, &br, &c, &cr, 0.99).unwrap();
    let near = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs();
    assert!(near(a.ratio, 1.1243768557037084), "{a:?}");
    assert!(near(a.ci[0], 1.087911886528557), "{a:?}");
    assert!(near(a.ci[1], 1.1620640690637152), "{a:?}");
    assert!(near(a.p_value, 1.1764282989210378e-05), "{a:?}");
    assert!(near(a.slope, 1.4506614862781353), "{a:?}");
    assert_eq!(a.df, 6.0);
}

#[test]
fn log_ancova_takes_a_host_slowdown_out_and_keeps_a_model_change() {
    // figure = k * reference^1.5 exactly: the candidate's processes all ran on a host 12%
    // slower, with the same model. Welch on the raw figures sees a big slowdown; the
    // adjusted ratio is 1 with no spread left.
    let reference_b = [62.0, 63.0, 64.0, 70.0];
    let reference_c = [69.0, 70.0, 72.0, 75.0];
    let figure = |r: &f64, k: f64| k * r.powf(1.5);
    let b: Vec<f64> = reference_b.iter().map(|r| figure(r, 1e-4)).collect();
    let same: Vec<f64> = reference_c.iter().map(|r| figure(r, 1e-4)).collect();
    let w = log_welch(&b, &same, 0.99).unwrap();
    assert!(w.ratio > 1.1, "{w:?}");
    let a = log_ancova(&b, &reference_b, &same, &reference_c, 0.99).unwrap();
    assert!(
        (a.ratio - 1.0).abs() < 1e-9 && (a.slope - 1.5).abs() < 1e-9,
        "{a:?}"
    );
    // A real 10% slowdown of the model on that slower host is still seen as 10%.
    let slower: Vec<f64> = reference_c.iter().map(|r| figure(r, 1.1e-4)).collect();
    let a = log_ancova(&b, &reference_b, &slower, &reference_c, 0.99).unwrap();
    assert!((a.ratio - 1.1).abs() < 1e-9, "{a:?}");
}

#[test]
fn log_ancova_refuses_what_it_cannot_fit() {
    let r = [60.0, 61.0, 62.0];
    assert!(log_ancova(&[1.0, 2.0], &[60.0, 61.0], &[1.0, 2.0, 3.0], &r, 0.99).is_none());
    assert!(log_ancova(&[1.0, 2.0, 0.0], &r, &[1.0, 2.0, 3.0], &r, 0.99).is_none());
    assert!(log_ancova(&[1.0, 2.0, 3.0], &[60.0, 61.0], &[1.0, 2.0, 3.0], &r, 0.99).is_none());
    // Reference times that never vary leave no slope to fit.
    let flat = [60.0; 3];
    assert!(log_ancova(&[1.0, 2.0, 3.0], &flat, &[1.0, 2.0, 3.0], &flat, 0.99).is_none());
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

#[test]
fn mann_whitney_matches_hand_computed_values() {
    // x = [1, 2, 3, 4], y = [3, 5, 6, 7, 8]. Pooled ranks: 1, 2, 3.5 (x's 3), 3.5 (y's 3),
    // 5, 6, 7, 8, 9, so R_x = 11.5 and U = 11.5 - 4*5/2 = 1.5; mu = 10; one tie pair:
    // sigma^2 = 20/12 * (10 - 6/72) = 16.527777...; z = -(8.5 - 0.5)/sigma = -1.967808;
    // p = erfc(1.967808 / sqrt 2) = 0.049090.
    let r = mann_whitney_u(&[1.0, 2.0, 3.0, 4.0], &[3.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
    assert_eq!(r.u, 1.5);
    assert!((r.z - -1.967_808_148).abs() < 1e-6, "{r:?}");
    assert!((r.p_value - 0.049_090_116).abs() < 1e-6, "{r:?}");

    // Complete separation, no ties: U = 0, sigma^2 = 9*7/12 = 5.25,
    // z = -(4.5 - 0.5)/sqrt(5.25) = -1.745743, p = 0.080856.
    let r = mann_whitney_u(&[1.1, 2.2, 3.3], &[4.4, 5.5, 6.6]).unwrap();
    assert_eq!(r.u, 0.0);
    assert!((r.z - -1.745_743_122).abs() < 1e-6, "{r:?}");
    assert!((r.p_value - 0.080_855_598).abs() < 1e-6, "{r:?}");
    // Swapping the samples mirrors U and z, not p.
    let s = mann_whitney_u(&[4.4, 5.5, 6.6], &[1.1, 2.2, 3.3]).unwrap();
    assert_eq!(s.u, 9.0);
    assert!((s.z + r.z).abs() < 1e-12 && (s.p_value - r.p_value).abs() < 1e-12);

    // Heavy ties: x = [5, 5, 5, 6], y = [5, 6, 6, 7]. Ranks: the four 5s share 2.5, the
    // three 6s share 6, 7 is 8: R_x = 3*2.5 + 6 = 13.5, U = 3.5; ties 4^3-4 + 3^3-3 = 84;
    // sigma^2 = 16/12 * (9 - 84/56) = 10; z = -(4.5 - 0.5)/sqrt(10) = -1.264911;
    // p = 0.205903.
    let r = mann_whitney_u(&[5.0, 5.0, 5.0, 6.0], &[5.0, 6.0, 6.0, 7.0]).unwrap();
    assert_eq!(r.u, 3.5);
    assert!((r.z - -1.264_911_064).abs() < 1e-6, "{r:?}");
    assert!((r.p_value - 0.205_903_211).abs() < 1e-6, "{r:?}");

    // All equal: no evidence at all. Empty or NaN: no test.
    let r = mann_whitney_u(&[2.0; 5], &[2.0; 7]).unwrap();
    assert_eq!((r.z, r.p_value), (0.0, 1.0));
    assert!(mann_whitney_u(&[], &[1.0]).is_none());
    assert!(mann_whitney_u(&[1.0, f64::NAN], &[1.0]).is_none());
}

#[test]
fn normal_functions_match_tables() {
    // Table values to 9 or 10 digits; statrs is accurate to about 1e-15, so the tolerance
    // (1e-9) is the tables' own rounding. erfc(1/sqrt 2) = 0.3173105 (two-sided p of
    // z = 1), erfc(3/sqrt 2) = 0.0026998, Phi(1.959964) = erfc(-1.959964/sqrt 2) / 2 = 0.975.
    let sqrt2 = std::f64::consts::SQRT_2;
    assert!((erfc(1.0 / sqrt2) - 0.317_310_508).abs() < 1e-9);
    assert!((erfc(3.0 / sqrt2) - 0.002_699_796).abs() < 1e-9);
    assert!((erfc(-1.0) - (2.0 - erfc(1.0))).abs() < 1e-15);
    assert!((erfc(-1.959_964 / sqrt2) / 2.0 - 0.975).abs() < 1e-9);
    assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-9);
    assert!((normal_quantile(0.995) - 2.575_829_304).abs() < 1e-9);
    assert!((normal_quantile(0.001) - -3.090_232_306).abs() < 1e-9);
    assert_eq!(normal_quantile(0.5), 0.0);
}

fn lognormal_sample(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut xs: Vec<f64> = (0..n)
        .map(|_| {
            let z: f64 = rng.sample(rand_distr::StandardNormal);
            scale * (0.1 * z).exp()
        })
        .collect();
    xs.sort_by(f64::total_cmp);
    xs
}

#[test]
fn ratio_bootstrap_finds_a_scaled_sample_and_not_a_resampled_one() {
    let a = lognormal_sample(2000, 1.0, 1);
    let b = lognormal_sample(2000, 1.0, 2);
    let same = bootstrap_percentile_ratio(&a, &b, 0.5, 0.99, 4000, 5);
    assert!(same.ci[0] < 1.0 && 1.0 < same.ci[1], "{same:?}");
    assert!(same.p_value > 0.01, "{same:?}");
    assert!(same.ci[1] - same.ci[0] < 0.03, "{same:?}");

    let slower: Vec<f64> = b.iter().map(|x| x * 1.2).collect();
    let r = bootstrap_percentile_ratio(&a, &slower, 0.5, 0.99, 4000, 5);
    assert!(r.ci[0] > 1.15 && r.ci[1] < 1.25, "{r:?}");
    assert!(r.p_value <= 1.0 / 4000.0 + 1e-12, "{r:?}");
    assert_eq!(
        r,
        bootstrap_percentile_ratio(&a, &slower, 0.5, 0.99, 4000, 5),
        "seeded"
    );

    let constant = bootstrap_percentile_ratio(&[2.0; 10], &[2.0; 10], 0.99, 0.99, 100, 1);
    assert_eq!(
        (constant.ratio, constant.ci, constant.p_value),
        (1.0, [1.0, 1.0], 1.0)
    );
}

#[test]
fn delta_method_standard_error_by_hand() {
    // baseline [1, 3]: m = 2, s^2 = 2, term 2 / (2 * 4) = 0.25;
    // candidate [2, 4, 6]: m = 4, s^2 = 4, term 4 / (3 * 16) = 1/12. se = sqrt(1/3).
    let se = log_ratio_of_means_se(&[1.0, 3.0], &[2.0, 4.0, 6.0]);
    assert!(close(se, (1.0f64 / 3.0).sqrt()), "{se}");
    assert_eq!(log_ratio_of_means_se(&[1.0], &[1.0, 2.0]), f64::INFINITY);
}
