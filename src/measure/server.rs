//! The server scenario (MLPerf LoadGen's meaning): queries arrive by a seeded Poisson process
//! at a target rate; one dispatcher feeds the model whatever is queued (up to `max_batch`,
//! waiting at most `max_wait` for a batch to fill); a query's latency is its completion time
//! minus its arrival time, so time spent queued counts.
//!
//! - The arrival schedule is generated before the timed window ([`poisson_schedule`]); every
//!   buffer the window writes is allocated before it starts, so the dispatcher does no
//!   allocation, I/O or locking: it reads the monotonic clock, runs the model, and stores
//!   completion times.
//! - Waiting for the next arrival is **sleep, then spin**: when the arrival is more than
//!   [`SPIN_WINDOW`] away the dispatcher sleeps until `SPIN_WINDOW` before it (so an idle server
//!   does not burn a core, which would also inflate the CPU-time energy estimate), then spins
//!   on the clock for the rest (a sleeping thread wakes 50-100 µs or more late on Linux, which
//!   would be added to every query's latency at low rates). The lateness that remains is
//!   reported as `idle_lag` (batch start minus the awaited arrival).
//! - Overload ends in bounded time: arrivals stop at `duration`; queued queries are served
//!   until `duration + drain` at most, and those still waiting then are `unserved`; with
//!   `max_queue`, a query arriving while that many wait is `dropped` at once. The window
//!   therefore lasts at most `duration + drain` plus the batch in flight at the deadline.
//!
//! [`find_max_qps`] searches the highest rate whose p99 stays under a bound, one full server
//! run per probe (the search and its precision are documented there).

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

use crate::schema::SearchEnd;
use crate::stats;

/// The dispatcher sleeps until this long before an arrival, then spins.
pub const SPIN_WINDOW: Duration = Duration::from_millis(1);

/// `completion_ns` of a query refused at arrival because `max_queue` queries were waiting.
pub const DROPPED: u64 = u64::MAX;
/// `completion_ns` of a query still queued when the drain deadline passed.
pub const UNSERVED: u64 = u64::MAX - 1;
/// Not (yet) served.
const PENDING: u64 = 0;

/// Arrival times (ns from the start of the window, ascending) of a Poisson process of `rate`
/// queries per second over `duration_s`: exponential inter-arrival times with mean `1 / rate`
/// from a ChaCha8 stream seeded by `seed`, so the same seed gives the same schedule on every
/// machine.
pub fn poisson_schedule(rate: f64, duration_s: f64, seed: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(exp) = Exp::new(rate) else {
        return out;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let end = duration_s * 1e9;
    let mut t = 0.0f64;
    loop {
        t += exp.sample(&mut rng) * 1e9;
        if t >= end {
            break;
        }
        out.push(t as u64);
    }
    out
}

/// Something a server runs: one call serves a batch of `k` queries (1 <= k <= `max_batch`).
pub trait BatchWorkload {
    type Error;
    fn run_batch(&mut self, k: usize) -> Result<(), Self::Error>;
}

impl<F, E> BatchWorkload for F
where
    F: FnMut(usize) -> Result<(), E>,
{
    type Error = E;
    fn run_batch(&mut self, k: usize) -> Result<(), E> {
        self(k)
    }
}

/// How the dispatcher serves a schedule.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub max_batch: usize,
    /// How long to wait for a batch to fill, from the oldest queued arrival (0: never wait).
    pub max_wait: Duration,
    /// A query arriving while this many wait is dropped.
    pub max_queue: Option<usize>,
    /// The end of the arrival schedule.
    pub duration: Duration,
    /// Serving stops at `duration + drain`; what is still queued is unserved.
    pub drain: Duration,
}

/// What one server run recorded: raw, before statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeRecord {
    /// Per query, in arrival order: completion time (ns from the window's start), or
    /// [`DROPPED`] / [`UNSERVED`].
    pub completion_ns: Vec<u64>,
    /// Size of every batch run, in order.
    pub batch_sizes: Vec<u32>,
    /// Each time the dispatcher waited idle for an arrival: how late it woke (clock read
    /// after the wait minus the arrival time).
    pub idle_lag_ns: Vec<u64>,
    /// When the dispatcher stopped (ns from the window's start).
    pub end_ns: u64,
}

/// Serves `arrivals` (ns from the window's start, ascending) with `workload`. Everything the
/// window writes is allocated before it starts.
pub fn serve<W: BatchWorkload>(
    workload: &mut W,
    arrivals: &[u64],
    cfg: &ServeConfig,
) -> Result<ServeRecord, W::Error> {
    let n = arrivals.len();
    let max_batch = cfg.max_batch.max(1);
    let max_queue = cfg.max_queue.unwrap_or(usize::MAX);
    let max_wait = cfg.max_wait.as_nanos() as u64;
    let deadline = (cfg.duration + cfg.drain).as_nanos() as u64;
    let mut completion = vec![PENDING; n];
    let mut batch_sizes: Vec<u32> = Vec::with_capacity(n);
    let mut idle_lag: Vec<u64> = Vec::with_capacity(n);
    let mut members: Vec<u32> = Vec::with_capacity(max_batch);

    let t0 = Instant::now();
    let now_ns = || t0.elapsed().as_nanos() as u64;
    // Arrivals before `next` have been admitted (queued or dropped); queries before `head`
    // have all been started or dropped; `queued` of them wait.
    let (mut next, mut head, mut queued) = (0usize, 0usize, 0usize);
    let admit = |now: u64, next: &mut usize, queued: &mut usize, completion: &mut [u64]| {
        while *next < n && arrivals[*next] <= now {
            if *queued >= max_queue {
                completion[*next] = DROPPED;
            } else {
                *queued += 1;
            }
            *next += 1;
        }
    };
    loop {
        let now = now_ns();
        admit(now, &mut next, &mut queued, &mut completion);
        if now >= deadline {
            break;
        }
        if queued == 0 {
            if next == n {
                break;
            }
            let target = arrivals[next].min(deadline);
            wait_until(t0, target);
            idle_lag.push(now_ns().saturating_sub(target));
            continue;
        }
        // Let the batch fill: until it is full, or `max_wait` after its oldest query arrived.
        if queued < max_batch && max_wait > 0 {
            let oldest = (head..next)
                .find(|&j| completion[j] == PENDING)
                .map(|j| arrivals[j])
                .unwrap_or(now);
            let until = (oldest + max_wait).min(deadline);
            while queued < max_batch && next < n {
                let t_next = arrivals[next];
                if t_next > until {
                    wait_until(t0, until);
                    break;
                }
                wait_until(t0, t_next);
                admit(now_ns(), &mut next, &mut queued, &mut completion);
            }
        }
        members.clear();
        let mut j = head;
        while members.len() < max_batch && j < next {
            if completion[j] == PENDING {
                members.push(j as u32);
            }
            j += 1;
        }
        head = j;
        queued -= members.len();
        workload.run_batch(members.len())?;
        let done = now_ns().max(1);
        for &m in &members {
            completion[m as usize] = done;
        }
        batch_sizes.push(members.len() as u32);
    }
    let end_ns = now_ns();
    for c in completion.iter_mut().filter(|c| **c == PENDING) {
        *c = UNSERVED;
    }
    Ok(ServeRecord {
        completion_ns: completion,
        batch_sizes,
        idle_lag_ns: idle_lag,
        end_ns,
    })
}

/// Sleeps until `SPIN_WINDOW` before `target_ns` (from `t0`), then spins until it.
pub fn wait_until(t0: Instant, target_ns: u64) {
    let spin = SPIN_WINDOW.as_nanos() as u64;
    loop {
        let now = t0.elapsed().as_nanos() as u64;
        if now >= target_ns {
            return;
        }
        let left = target_ns - now;
        if left > spin {
            std::thread::sleep(Duration::from_nanos(left - spin));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// One server run as the results report it (the parent adds confidence intervals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRaw {
    /// The rate the schedule was drawn at, queries/s.
    pub target_qps: f64,
    /// Queries in the schedule.
    pub queries: usize,
    pub duration_s: f64,
    /// Served queries.
    pub served: usize,
    /// Refused at arrival (`max_queue` were waiting).
    pub dropped: usize,
    /// Still queued at `duration + drain`.
    pub unserved: usize,
    /// Served, but slower than `late_ms`.
    pub late: usize,
    /// Batches run and their mean size.
    pub batches: usize,
    pub mean_batch: f64,
    /// When the dispatcher stopped, seconds from the window's start.
    pub end_s: f64,
    /// Latency (completion - arrival) of every served query, ms, in arrival order.
    pub latencies_ms: Vec<f64>,
    /// Wake-up lateness after idle waits, ms: median and max (absent when it never idled).
    pub idle_lag_p50_ms: Option<f64>,
    pub idle_lag_max_ms: Option<f64>,
}

impl ProbeRaw {
    /// The statistics of a run from its schedule and record.
    pub fn from_record(
        target_qps: f64,
        duration_s: f64,
        arrivals: &[u64],
        rec: &ServeRecord,
        late_ms: Option<f64>,
    ) -> Self {
        let mut latencies_ms = Vec::with_capacity(arrivals.len());
        let (mut dropped, mut unserved) = (0, 0);
        for (&a, &c) in arrivals.iter().zip(&rec.completion_ns) {
            match c {
                DROPPED => dropped += 1,
                UNSERVED => unserved += 1,
                c => latencies_ms.push(c.saturating_sub(a) as f64 / 1e6),
            }
        }
        let late = late_ms
            .map(|bound| latencies_ms.iter().filter(|&&l| l > bound).count())
            .unwrap_or(0);
        let mut lag: Vec<f64> = rec.idle_lag_ns.iter().map(|&x| x as f64 / 1e6).collect();
        lag.sort_by(f64::total_cmp);
        let batches = rec.batch_sizes.len();
        ProbeRaw {
            target_qps,
            queries: arrivals.len(),
            duration_s,
            served: latencies_ms.len(),
            dropped,
            unserved,
            late,
            batches,
            mean_batch: if batches > 0 {
                rec.batch_sizes.iter().map(|&b| b as f64).sum::<f64>() / batches as f64
            } else {
                0.0
            },
            end_s: rec.end_ns as f64 / 1e9,
            latencies_ms,
            idle_lag_p50_ms: (!lag.is_empty()).then(|| stats::percentile(&lag, 0.5)),
            idle_lag_max_ms: lag.last().copied(),
        }
    }

    /// Queries in the schedule per second of schedule: the rate actually offered.
    pub fn offered_qps(&self) -> f64 {
        self.queries as f64 / self.duration_s
    }

    /// Served queries per second, over the schedule or until the last completion if later.
    pub fn achieved_qps(&self) -> f64 {
        self.served as f64 / self.duration_s.max(self.end_s)
    }

    /// The server did not keep up: a query was dropped or left unserved, or it served less
    /// than 90% of the offered rate (the backlog took more than ~10% of the schedule to drain).
    pub fn saturated(&self) -> bool {
        self.dropped + self.unserved > 0 || self.achieved_qps() < 0.9 * self.offered_qps()
    }

    /// p99 of the served queries' latency (numpy's linear percentile), if any was served.
    pub fn p99_ms(&self) -> Option<f64> {
        if self.latencies_ms.is_empty() {
            return None;
        }
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        Some(stats::percentile(&v, 0.99))
    }

    /// A probe of the search passes when queries were served, none was dropped or left
    /// unserved, and the p99 point estimate is at most the bound.
    pub fn passes(&self, p99_bound_ms: f64) -> bool {
        self.dropped + self.unserved == 0 && self.p99_ms().is_some_and(|p| p <= p99_bound_ms)
    }
}

/// The search's result: the probes in the order run, and the bracket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// The single-stream capacity estimate the search started from (1 / warm-up latency).
    pub start_capacity_qps: f64,
    pub probes: Vec<ProbeRaw>,
    /// Index into `probes` of the highest passing rate.
    pub best: Option<usize>,
    /// Highest passing rate and lowest failing rate.
    pub passing_qps: Option<f64>,
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
}

/// The shortest schedule a server run cut by the time budget gets: a shorter one holds too
/// few queries for any figure.
pub const MIN_BUDGET_WINDOW_S: f64 = 0.2;

/// A server run's schedule length under the process's time budget (`--quick`): `duration_s`,
/// or what is left of the budget when that is less (at least [`MIN_BUDGET_WINDOW_S`]), and
/// whether it was cut.
pub fn budget_window_s(duration_s: f64, deadline: Option<Instant>) -> (f64, bool) {
    match deadline {
        None => (duration_s, false),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now()).as_secs_f64();
            let window = duration_s.min(left.max(MIN_BUDGET_WINDOW_S));
            (window, window < duration_s)
        }
    }
}

/// Queries a probe's schedule should hold on average: fewer make its p99 little more than its
/// maximum.
pub const MIN_PROBE_QUERIES: f64 = 100.0;

/// The lowest rate the search tries: [`MIN_PROBE_QUERIES`] expected in the schedule.
pub fn min_search_rate(duration_s: f64) -> f64 {
    MIN_PROBE_QUERIES / duration_s
}

/// Searches the highest rate whose probe passes ([`ProbeRaw::passes`]).
///
/// 1. **Bracket**: the first probe runs at half the single-stream capacity estimate
///    (`capacity_qps`, from warm-up). While probes pass, the rate doubles; while they fail,
///    it halves, down to [`min_search_rate`] (100 queries per schedule on average: a p99 of
///    fewer is little more than the maximum); if that fails too the search ends with
///    `no_passing_rate`.
/// 2. **Bisection** on a log scale: the next probe runs at the geometric mean of the highest
///    passing and the lowest failing rate, until `failing / passing <= 1 + precision`
///    (`converged`) or `max_probes` probes have run (`max_probes`).
///
/// The reported maximum is the highest passing rate: the true one lies between it and the
/// lowest failing rate, as far as single probes can tell (each probe's p99 is itself a noisy
/// estimate; its CI is reported with it).
pub fn find_max_qps<E>(
    capacity_qps: f64,
    p99_bound_ms: f64,
    precision: f64,
    max_probes: usize,
    duration_s: f64,
    probe: impl FnMut(f64) -> Result<ProbeRaw, E>,
) -> Result<Search, E> {
    let bound = SearchBound {
        p99_bound_ms,
        precision,
        max_probes,
        deadline: None,
    };
    find_max_qps_within(capacity_qps, &bound, duration_s, probe)
}

/// What ends a max-QPS search besides its bracket.
#[derive(Debug, Clone, Copy)]
pub struct SearchBound {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    /// The process's time budget (`--quick`): once past, no further probe runs and the
    /// search ends with `budget` (the first probe always runs).
    pub deadline: Option<Instant>,
}

/// [`find_max_qps`] under a [`SearchBound`], which may carry a deadline.
pub fn find_max_qps_within<E>(
    capacity_qps: f64,
    bound: &SearchBound,
    duration_s: f64,
    mut probe: impl FnMut(f64) -> Result<ProbeRaw, E>,
) -> Result<Search, E> {
    let SearchBound {
        p99_bound_ms,
        precision,
        max_probes,
        deadline,
    } = *bound;
    let mut s = Search {
        start_capacity_qps: capacity_qps,
        probes: Vec::new(),
        best: None,
        passing_qps: None,
        failing_qps: None,
        end: SearchEnd::MaxProbes,
    };
    let floor = min_search_rate(duration_s);
    let mut rate = (0.5 * capacity_qps).max(floor);
    while s.probes.len() < max_probes {
        if !s.probes.is_empty() && deadline.is_some_and(|d| Instant::now() >= d) {
            s.end = SearchEnd::Budget;
            break;
        }
        let p = probe(rate)?;
        let pass = p.passes(p99_bound_ms);
        s.probes.push(p);
        if pass {
            s.passing_qps = Some(rate);
            s.best = Some(s.probes.len() - 1);
        } else {
            s.failing_qps = Some(rate);
        }
        match (s.passing_qps, s.failing_qps) {
            (Some(lo), Some(hi)) => {
                if hi / lo <= 1.0 + precision {
                    s.end = SearchEnd::Converged;
                    break;
                }
                rate = (lo * hi).sqrt();
            }
            (Some(lo), None) => rate = lo * 2.0,
            (None, Some(hi)) => {
                if hi <= floor {
                    s.end = SearchEnd::NoPassingRate;
                    break;
                }
                rate = (hi / 2.0).max(floor);
            }
            (None, None) => unreachable!("every probe passes or fails"),
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_inter_arrivals_have_the_exponential_mean_and_variance() {
        // 1000 queries/s for 100 s: ~100,000 gaps of mean 1 ms and variance 1 ms^2.
        let rate = 1000.0;
        let a = poisson_schedule(rate, 100.0, 7);
        assert_eq!(
            a,
            poisson_schedule(rate, 100.0, 7),
            "seeded: the same schedule"
        );
        assert_ne!(a, poisson_schedule(rate, 100.0, 8));
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(*a.last().unwrap() < 100_000_000_000);
        let gaps: Vec<f64> = std::iter::once(a[0])
            .chain(a.windows(2).map(|w| w[1] - w[0]))
            .map(|ns| ns as f64 / 1e6)
            .collect();
        let n = gaps.len() as f64;
        // The count is Poisson(100,000): within 4 standard deviations (~1,265).
        assert!((n - 100_000.0).abs() < 1_265.0, "{n} arrivals");
        let mean = stats::mean(&gaps);
        let var = stats::stdev(&gaps).powi(2);
        // Standard error of the mean 1/sqrt(n) ~ 0.3%; of the variance ~ sqrt(8/n) ~ 0.9%.
        assert!((mean - 1.0).abs() < 0.015, "mean gap {mean} ms");
        assert!((var - 1.0).abs() < 0.04, "variance {var} ms^2");
        // Coefficient of variation 1: what makes it Poisson rather than evenly spaced.
        assert!((var.sqrt() / mean - 1.0).abs() < 0.02);
    }

    fn fake_probe(rate: f64, capacity: f64) -> ProbeRaw {
        // p99 grows like 1 / (1 - load); saturated at or over capacity.
        let load = rate / capacity;
        let n = 1000;
        let p99 = if load < 1.0 { 1.0 / (1.0 - load) } else { 1e9 };
        ProbeRaw {
            target_qps: rate,
            queries: n,
            duration_s: 1.0,
            served: n,
            dropped: 0,
            unserved: if load < 1.0 { 0 } else { 10 },
            late: 0,
            batches: n,
            mean_batch: 1.0,
            end_s: 1.0,
            latencies_ms: vec![p99; n],
            idle_lag_p50_ms: None,
            idle_lag_max_ms: None,
        }
    }

    #[test]
    fn the_search_brackets_then_bisects_to_the_stated_precision() {
        // p99 <= 10 ms  <=>  load <= 0.9: the answer is 900 queries/s.
        let s = find_max_qps(400.0, 10.0, 0.02, 30, 1.0, |r| {
            Ok::<_, ()>(fake_probe(r, 1000.0))
        })
        .unwrap();
        assert_eq!(s.end, SearchEnd::Converged);
        let (lo, hi) = (s.passing_qps.unwrap(), s.failing_qps.unwrap());
        assert!(lo <= 900.0 && hi > 900.0 && hi / lo <= 1.02, "{lo} {hi}");
        assert_eq!(s.probes[s.best.unwrap()].target_qps, lo);
        // Doubling from 200: 200, 400, 800 pass, 1600 fails; then bisection.
        let rates: Vec<f64> = s.probes.iter().map(|p| p.target_qps).collect();
        assert_eq!(&rates[..4], &[200.0, 400.0, 800.0, 1600.0]);

        // A bound nothing meets ends the search instead of probing forever.
        let s = find_max_qps(400.0, 1.05, 0.02, 30, 1.0, |r| {
            Ok::<_, ()>(fake_probe(r, 1000.0))
        })
        .unwrap();
        assert_eq!(s.end, SearchEnd::NoPassingRate);
        assert!(s.passing_qps.is_none() && s.best.is_none());
        // It stopped at the floor: 100 queries per 1 s schedule.
        assert_eq!(s.failing_qps, Some(100.0));
        assert_eq!(s.probes.len(), 2, "200, then 100");
        // And the probe budget is a hard cap.
        let s = find_max_qps(400.0, 10.0, 1e-6, 5, 1.0, |r| {
            Ok::<_, ()>(fake_probe(r, 1000.0))
        })
        .unwrap();
        assert_eq!((s.probes.len(), s.end), (5, SearchEnd::MaxProbes));
    }
}
