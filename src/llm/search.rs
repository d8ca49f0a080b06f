//! The highest rate a server sustains under a pass/fail rule: bracketing, then bisection on a
//! log scale, over probes the caller runs.
//!
//! The same algorithm as `measure::server::find_max_qps`, which is tied to one p99 bound on
//! its own probe type; this version takes any probe that says whether it passed, so the LLM
//! server's two bounds (TTFT and TPOT) fit. `measure::server::find_max_qps` is this function
//! with `|rate| { let p = probe(rate)?; let pass = p.passes(bound); Ok((p, pass)) }` and a
//! floor of 100 queries per schedule: once both live in one place the older one can call this.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::schema::SearchEnd;

/// How the search runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BracketConfig {
    /// The single-stream capacity estimate (1 / the warm-up's service time): the first probe
    /// runs at half of it.
    pub capacity_qps: f64,
    /// Bisection stops when `failing / passing <= 1 + precision`.
    pub precision: f64,
    /// Most probes run, all phases together.
    pub max_probes: usize,
    /// The lowest rate tried: if it fails the search ends with `no_passing_rate`.
    pub floor_qps: f64,
    /// The process's time budget (`--quick`): once past, no further probe runs and the search
    /// ends with `budget` (the first probe always runs).
    pub deadline: Option<Instant>,
}

/// The probes in the order run, and the bracket they ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bracket<P> {
    pub start_capacity_qps: f64,
    pub probes: Vec<P>,
    /// Whether each probe passed, in the same order.
    pub passed: Vec<bool>,
    /// Index into `probes` of the highest passing rate.
    pub best: Option<usize>,
    /// Highest passing rate and lowest failing rate: the true maximum lies between them, as
    /// far as single probes can tell.
    pub passing_qps: Option<f64>,
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
}

/// Searches the highest rate whose probe passes.
///
/// 1. **Bracket**: the first probe runs at half of `capacity_qps` (at least `floor_qps`).
///    While probes pass, the rate doubles; while they fail, it halves, down to `floor_qps`;
///    if that fails too the search ends with `no_passing_rate`.
/// 2. **Bisection** on a log scale: the next probe runs at the geometric mean of the highest
///    passing and the lowest failing rate, until `failing / passing <= 1 + precision`
///    (`converged`) or `max_probes` probes have run (`max_probes`).
pub fn bracket_max_rate<P, E>(
    cfg: &BracketConfig,
    mut probe: impl FnMut(f64) -> Result<(P, bool), E>,
) -> Result<Bracket<P>, E> {
    let mut s = Bracket {
        start_capacity_qps: cfg.capacity_qps,
        probes: Vec::new(),
        passed: Vec::new(),
        best: None,
        passing_qps: None,
        failing_qps: None,
        end: SearchEnd::MaxProbes,
    };
    let floor = cfg.floor_qps;
    let mut rate = (0.5 * cfg.capacity_qps).max(floor);
    while s.probes.len() < cfg.max_probes {
        if !s.probes.is_empty() && cfg.deadline.is_some_and(|d| Instant::now() >= d) {
            s.end = SearchEnd::Budget;
            break;
        }
        let (p, pass) = probe(rate)?;
        s.probes.push(p);
        s.passed.push(pass);
        if pass {
            s.passing_qps = Some(rate);
            s.best = Some(s.probes.len() - 1);
        } else {
            s.failing_qps = Some(rate);
        }
        match (s.passing_qps, s.failing_qps) {
            (Some(lo), Some(hi)) => {
                if hi / lo <= 1.0 + cfg.precision {
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

    fn cfg(capacity: f64, precision: f64, max_probes: usize, floor: f64) -> BracketConfig {
        BracketConfig {
            capacity_qps: capacity,
            precision,
            max_probes,
            floor_qps: floor,
            deadline: None,
        }
    }

    /// The same cases as `measure::server`'s search test, through a plain pass/fail rule:
    /// rates up to 900 pass.
    #[test]
    fn brackets_then_bisects_like_the_server_search() {
        let pass = |r: f64| Ok::<_, ()>((r, r <= 900.0));
        let s = bracket_max_rate(&cfg(400.0, 0.02, 30, 100.0), pass).unwrap();
        assert_eq!(s.end, SearchEnd::Converged);
        let (lo, hi) = (s.passing_qps.unwrap(), s.failing_qps.unwrap());
        assert!(lo <= 900.0 && hi > 900.0 && hi / lo <= 1.02, "{lo} {hi}");
        assert_eq!(s.probes[s.best.unwrap()], lo);
        assert_eq!(&s.probes[..4], &[200.0, 400.0, 800.0, 1600.0]);
        assert_eq!(&s.passed[..4], &[true, true, true, false]);
        assert_eq!(s.probes.len(), s.passed.len());

        let s =
            bracket_max_rate(&cfg(400.0, 0.02, 30, 100.0), |r| Ok::<_, ()>((r, false))).unwrap();
        assert_eq!(s.end, SearchEnd::NoPassingRate);
        assert_eq!(s.probes, [200.0, 100.0]);
        assert_eq!((s.best, s.passing_qps), (None, None));

        let s = bracket_max_rate(&cfg(400.0, 1e-6, 5, 100.0), pass).unwrap();
        assert_eq!((s.probes.len(), s.end), (5, SearchEnd::MaxProbes));
    }

    #[test]
    fn a_probe_error_ends_the_search() {
        let r = bracket_max_rate(&cfg(10.0, 0.1, 10, 1.0), |rate| {
            if rate > 6.0 {
                Err("model failed")
            } else {
                Ok((rate, true))
            }
        });
        assert_eq!(r.unwrap_err(), "model failed");
    }
}
