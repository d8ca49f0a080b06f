//! The reference kernel: a fixed piece of arithmetic, timed just before and just after each
//! worker's measured window, that tells how fast the machine itself was at that moment.
//!
//! On shared machines (cloud VMs, CI runners) a core's speed changes for seconds at a time
//! with what the host's other tenants do: on this project's 2-vCPU VM a fixed matmul loop
//! runs at its floor about half the time and 5-35% slower the rest. Some spells slow
//! arithmetic, others the shared cache, so the kernel does both: a small matmul that lives
//! in L1 and a matrix-vector product over 2 MiB, more than a core's L2. Such a state slows the
//! model under test just as much, and a whole worker process can sit in it. The kernel is
//! plain Rust (not candle), so a change in the model or in candle does not move it; `check`
//! compares only the processes whose reference ran near its fastest (docs/check.md,
//! "Undisturbed processes: a reference kernel beside the model").

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Side of the square f32 matrices of the matmul: about 10 µs per product in release.
const N: usize = 48;
/// Rows and columns of the matrix-vector product's f32 matrix: 2 MiB.
const ROWS: usize = 512;
const COLS: usize = 1024;

/// Median time of one reference product, in µs, over about `budget` of repetitions (at
/// least 5). Runs on the calling thread, which is where a 1-thread forward pass runs.
pub fn reference_us(budget: Duration) -> f64 {
    let a: Vec<f32> = (0..N * N).map(|i| 1.0 + (i % 7) as f32 * 1e-3).collect();
    let b: Vec<f32> = (0..N * N).map(|i| 1.0 - (i % 5) as f32 * 1e-3).collect();
    let mut c = vec![0f32; N * N];
    let m: Vec<f32> = (0..ROWS * COLS).map(|i| (i % 11) as f32 * 1e-2).collect();
    let x: Vec<f32> = (0..COLS).map(|i| (i % 13) as f32 * 1e-2).collect();
    let mut y = vec![0f32; ROWS];
    // Reserved before timing: the loop below neither allocates nor prints.
    let mut times_us = Vec::with_capacity(4096);
    let start = Instant::now();
    while times_us.len() < 5 || (start.elapsed() < budget && times_us.len() < times_us.capacity()) {
        let t = Instant::now();
        matmul(black_box(&a), black_box(&b), &mut c);
        matvec(black_box(&m), black_box(&x), &mut y);
        times_us.push(t.elapsed().as_secs_f64() * 1e6);
        black_box((&c, &y));
    }
    times_us.sort_unstable_by(f64::total_cmp);
    times_us[times_us.len() / 2]
}

fn matvec(m: &[f32], x: &[f32], y: &mut [f32]) {
    // Eight running sums, so the loop vectorises and is bound by reading `m`.
    for (yi, row) in y.iter_mut().zip(m.chunks_exact(COLS)) {
        let mut acc = [0f32; 8];
        for (r, v) in row.chunks_exact(8).zip(x.chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += r[k] * v[k];
            }
        }
        *yi = acc.iter().sum();
    }
}

fn matmul(a: &[f32], b: &[f32], c: &mut [f32]) {
    c.fill(0.0);
    for i in 0..N {
        for k in 0..N {
            let x = a[i * N + k];
            for (cj, bj) in c[i * N..(i + 1) * N].iter_mut().zip(&b[k * N..(k + 1) * N]) {
                *cj += x * bj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_is_right() {
        let a: Vec<f32> = (0..N * N).map(|i| (i % 3) as f32).collect();
        let b: Vec<f32> = (0..N * N).map(|i| (i % 4) as f32).collect();
        let mut c = vec![1f32; N * N];
        matmul(&a, &b, &mut c);
        for (i, j) in [(0, 0), (3, 7), (N - 1, N - 2)] {
            let want: f32 = (0..N).map(|k| a[i * N + k] * b[k * N + j]).sum();
            assert_eq!(c[i * N + j], want);
        }
    }

    #[test]
    fn the_matrix_vector_product_is_right() {
        let m: Vec<f32> = (0..ROWS * COLS).map(|i| (i % 3) as f32).collect();
        let x: Vec<f32> = (0..COLS).map(|i| (i % 2) as f32).collect();
        let mut y = vec![0f32; ROWS];
        matvec(&m, &x, &mut y);
        for i in [0, 7, ROWS - 1] {
            let want: f32 = (0..COLS).map(|j| m[i * COLS + j] * x[j]).sum();
            assert!(
                (y[i] - want).abs() <= 1e-6 * want.abs(),
                "{} vs {want}",
                y[i]
            );
        }
    }

    #[test]
    fn a_reference_time_is_positive_and_finite() {
        let us = reference_us(Duration::from_millis(2));
        assert!(us.is_finite() && us > 0.0, "{us}");
    }
}
