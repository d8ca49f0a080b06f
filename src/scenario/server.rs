//! Server: queries arrive by a seeded Poisson process at a target rate (MLPerf LoadGen's
//! server), or a search finds the highest rate whose p99 latency stays under a bound
//! (`find_max_qps`). The dispatcher, the schedule and the search are `measure::server`'s;
//! this kind validates the table, makes the cases, runs them in the worker, and makes their
//! record and their part of `check` (`result.rs`).

mod result;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Cell, Driven, Measured, ScenarioKind};
use crate::compare::{KindMetrics, MetricComparison};
use crate::measure::server::{self, BatchWorkload, ProbeRaw, ServeConfig};
use crate::measure::{self, Observer, Phase, Progress, SamplerConfig, Workload};
use crate::schema::{fmt_rate, CaseResult, SearchEnd, Settings, StopReason};
use crate::spec::Checker;

/// Default length of one server run's arrival schedule.
pub const DEFAULT_SERVER_DURATION_S: f64 = 2.0;
/// Default bound on serving what is still queued after the schedule ends.
pub const DEFAULT_DRAIN_S: f64 = 1.0;
/// Default relative precision of the max-QPS search: it stops when the lowest failing rate
/// is within 5% of the highest passing one.
pub const DEFAULT_SEARCH_PRECISION: f64 = 0.05;
/// Default cap on server runs in one search.
pub const DEFAULT_MAX_PROBES: usize = 12;

/// The server kind.
pub struct Server;

/// `[scenarios.server]`: queries arrive by a seeded Poisson process (MLPerf LoadGen's server).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// Offered rates, queries per second: one case each.
    pub target_qps: Option<Spanned<Vec<f64>>>,
    /// Search the highest rate whose p99 stays under a bound: one case.
    pub find_max_qps: Option<Spanned<FindMaxEntry>>,
    /// Length of the arrival schedule of one run (each probe of a search is one run).
    pub duration_s: Option<Spanned<f64>>,
    /// Largest batch the dispatcher forms from queued queries; one case per value.
    pub max_batch: Option<Spanned<Vec<i64>>>,
    /// How long the dispatcher waits for a batch to fill, from the oldest queued arrival.
    pub max_wait_ms: Option<Spanned<f64>>,
    /// Seeds the arrival process (default: settings.seed).
    pub seed: Option<u64>,
    /// Served queries slower than this are counted as late.
    pub late_ms: Option<Spanned<f64>>,
    /// Queries arriving while this many wait are dropped (default: no limit).
    pub max_queue: Option<Spanned<i64>>,
    /// After the schedule ends, queued queries are served for at most this long; the rest
    /// are reported unserved.
    pub drain_s: Option<Spanned<f64>>,
}

/// `find_max_qps = { p99_bound_ms = 20 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindMaxEntry {
    pub p99_bound_ms: Spanned<f64>,
    /// The search stops when the failing rate is within this factor of the passing one.
    pub precision: Option<Spanned<f64>>,
    pub max_probes: Option<Spanned<i64>>,
}

/// `[scenarios.server]` after validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Offered rates (queries/s), ascending, without repeats: one case each.
    pub target_qps: Vec<f64>,
    /// The search for the highest rate under a p99 bound: one more case.
    pub find_max: Option<FindMaxSpec>,
    pub duration_s: f64,
    /// One case per value (x each rate).
    pub max_batch: Vec<usize>,
    pub max_wait_ms: f64,
    pub seed: u64,
    pub late_ms: Option<f64>,
    pub max_queue: Option<usize>,
    pub drain_s: f64,
}

/// `find_max_qps` after validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindMaxSpec {
    /// A probe passes when its p99 latency (point estimate) is at most this, and no query was
    /// dropped or left unserved.
    pub p99_bound_ms: f64,
    /// Bisection stops when `failing rate / passing rate <= 1 + precision`.
    pub precision: f64,
    /// Most server runs (probes) in one search.
    pub max_probes: usize,
}

/// What a server case offers: a fixed rate, or a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerTarget {
    Qps(f64),
    FindMax(FindMaxSpec),
}

/// One server case's load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerLoad {
    pub target: ServerTarget,
    pub duration_s: f64,
    pub max_batch: usize,
    pub max_wait_ms: f64,
    pub seed: u64,
    pub late_ms: Option<f64>,
    pub max_queue: Option<usize>,
    pub drain_s: f64,
}

/// The raw record of a server case: every server run, from the worker to the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMeasurement {
    pub probes: Vec<ProbeRaw>,
    /// The probe the case reports: the only one, or the search's highest passing rate.
    pub chosen: Option<usize>,
    pub search: Option<SearchRaw>,
}

/// How a max-QPS search went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRaw {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    pub start_capacity_qps: f64,
    pub passing_qps: Option<f64>,
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
}

impl ServerSpec {
    /// Every server case's load: each rate, then the search, for each `max_batch`.
    pub fn loads(&self) -> Vec<ServerLoad> {
        let mut targets: Vec<ServerTarget> = self
            .target_qps
            .iter()
            .map(|&q| ServerTarget::Qps(q))
            .collect();
        if let Some(f) = &self.find_max {
            targets.push(ServerTarget::FindMax(f.clone()));
        }
        let mut out = Vec::new();
        for target in targets {
            for &max_batch in &self.max_batch {
                out.push(ServerLoad {
                    target: target.clone(),
                    duration_s: self.duration_s,
                    max_batch,
                    max_wait_ms: self.max_wait_ms,
                    seed: self.seed,
                    late_ms: self.late_ms,
                    max_queue: self.max_queue,
                    drain_s: self.drain_s,
                });
            }
        }
        out
    }
}

impl ServerLoad {
    /// The scenario part of the case id after `server/`: `q200/b1`, `max-p99-20ms/b4`.
    pub fn id_part(&self) -> String {
        let what = match &self.target {
            ServerTarget::Qps(q) => format!("q{}", fmt_rate(*q)),
            ServerTarget::FindMax(f) => format!("max-p99-{}ms", fmt_rate(f.p99_bound_ms)),
        };
        format!("{what}/b{}", self.max_batch)
    }

    /// Longest time one server run may take: schedule, drain, and a margin for the batch in
    /// flight at the deadline.
    pub fn run_bound_s(&self) -> f64 {
        self.duration_s + self.drain_s
    }
}

impl ScenarioKind for Server {
    type Entry = ServerEntry;
    type Spec = ServerSpec;
    type Case = ServerLoad;
    type Raw = ServerMeasurement;

    const EXAMPLE: &'static str = "[scenarios.server]";

    fn validate(
        &self,
        entry: &Spanned<ServerEntry>,
        at: &str,
        checker: &mut Checker,
        settings: &Settings,
    ) -> Option<ServerSpec> {
        let spec = validate_table(entry, at, checker, settings)?;
        fits_the_timeout(&spec, entry, at, checker, settings).then_some(spec)
    }

    /// Each rate, then the search, for each `max_batch`: `q<rate>/b<max_batch>`,
    /// `max-p99-<bound>ms/b<max_batch>`; the case's batch size is its `max_batch`.
    fn expand(&self, spec: &ServerSpec) -> Vec<Cell<ServerLoad>> {
        spec.loads()
            .into_iter()
            .map(|load| Cell {
                id_part: load.id_part(),
                batch_size: load.max_batch,
                case: load,
            })
            .collect()
    }

    /// Every batch size the dispatcher may form.
    fn input_batches(&self, load: &ServerLoad, _batch_size: usize) -> Vec<usize> {
        (1..=load.max_batch).collect()
    }

    /// A server run's figures are those of one schedule: they are not pooled.
    fn single_process(&self) -> bool {
        true
    }

    fn measure<W: Driven>(
        &self,
        load: &ServerLoad,
        pipeline: &mut W,
        cfg: &SamplerConfig,
        observer: &mut dyn Observer,
    ) -> Result<Measured<ServerMeasurement>, <W as Workload>::Error> {
        let (sampled, raw) = run_server(pipeline, cfg, load, observer)?;
        Ok(Measured {
            sampled,
            raw: Some(raw),
        })
    }

    fn assemble(
        &self,
        load: &ServerLoad,
        raw: &ServerMeasurement,
        result: &mut CaseResult,
        settings: &Settings,
    ) {
        result::apply_server(result, load, raw, settings)
    }

    fn metrics<'a>(&self, case: &'a CaseResult) -> KindMetrics<'a> {
        result::metrics(case)
    }

    fn check_rows(&self, b: &CaseResult, c: &CaseResult, rows: &mut Vec<MetricComparison>) {
        result::server_rows(b, c, rows)
    }
}

/// The table's fields, each checked (every problem recorded); `None` when any is wrong.
fn validate_table(
    e: &Spanned<ServerEntry>,
    at: &str,
    checker: &mut Checker,
    settings: &Settings,
) -> Option<ServerSpec> {
    let s = e.get_ref();
    let mut ok = true;
    let rates = match target_rates(e, at, checker) {
        Some(r) => r,
        None => {
            ok = false;
            Vec::new()
        }
    };
    if s.target_qps.is_none() && s.find_max_qps.is_none() {
        checker.problem(
            at,
            e.span(),
            "a server scenario needs `target_qps` and/or `find_max_qps`",
            Some("as in target_qps = [50, 200], or find_max_qps = { p99_bound_ms = 20 }"),
        );
        ok = false;
    }
    let find_max = match &s.find_max_qps {
        None => None,
        Some(f) => {
            let r = find_max(&format!("{at}.find_max_qps"), f.get_ref(), checker);
            ok &= r.is_some();
            r
        }
    };
    let mut spec = ServerSpec {
        target_qps: rates,
        find_max,
        duration_s: DEFAULT_SERVER_DURATION_S,
        max_batch: vec![1],
        max_wait_ms: 0.0,
        seed: s.seed.unwrap_or(settings.seed),
        late_ms: None,
        max_queue: None,
        drain_s: DEFAULT_DRAIN_S,
    };
    if let Some(v) = &s.duration_s {
        match checker.positive_number(&format!("{at}.duration_s"), v, "seconds", false) {
            Some(x) => spec.duration_s = x,
            None => ok = false,
        }
    }
    if let Some(v) = &s.drain_s {
        match checker.positive_number(&format!("{at}.drain_s"), v, "seconds", true) {
            Some(x) => spec.drain_s = x,
            None => ok = false,
        }
    }
    if let Some(v) = &s.max_wait_ms {
        match checker.positive_number(&format!("{at}.max_wait_ms"), v, "milliseconds", true) {
            Some(x) => spec.max_wait_ms = x,
            None => ok = false,
        }
    }
    if let Some(v) = &s.late_ms {
        match checker.positive_number(&format!("{at}.late_ms"), v, "milliseconds", false) {
            Some(x) => spec.late_ms = Some(x),
            None => ok = false,
        }
    }
    if let Some(v) = &s.max_queue {
        match checker.count(&format!("{at}.max_queue"), v, 1) {
            Some(n) => spec.max_queue = Some(n),
            None => ok = false,
        }
    }
    if let Some(v) = &s.max_batch {
        match checker.counts(&format!("{at}.max_batch"), v, 1, false) {
            Some(mut b) => {
                let mut seen = BTreeSet::new();
                b.retain(|x| seen.insert(*x));
                spec.max_batch = b;
            }
            None => ok = false,
        }
    }
    ok.then_some(spec)
}

/// `target_qps`: rates above zero, ascending, without repeats (empty when absent).
fn target_rates(e: &Spanned<ServerEntry>, at: &str, checker: &mut Checker) -> Option<Vec<f64>> {
    let s = e.get_ref();
    let mut ok = true;
    let mut rates = Vec::new();
    if let Some(list) = &s.target_qps {
        for (i, &q) in list.get_ref().iter().enumerate() {
            if q.is_finite() && q > 0.0 {
                if !rates.contains(&q) {
                    rates.push(q);
                }
            } else {
                checker.problem(
                    format!("{at}.target_qps[{i}]"),
                    list.span(),
                    format!("must be a rate above zero (queries per second), got {q}"),
                    Some("as in target_qps = [50, 200]"),
                );
                ok = false;
            }
        }
        if list.get_ref().is_empty() && s.find_max_qps.is_none() {
            checker.problem(
                format!("{at}.target_qps"),
                list.span(),
                "must not be empty",
                Some("list the offered rates, as in target_qps = [50, 200], or use find_max_qps"),
            );
            ok = false;
        }
    }
    rates.sort_by(f64::total_cmp);
    ok.then_some(rates)
}

fn find_max(at: &str, f: &FindMaxEntry, checker: &mut Checker) -> Option<FindMaxSpec> {
    let bound = checker.positive_number(
        &format!("{at}.p99_bound_ms"),
        &f.p99_bound_ms,
        "milliseconds",
        false,
    );
    let precision = match &f.precision {
        None => Some(DEFAULT_SEARCH_PRECISION),
        Some(v) => {
            let x = *v.get_ref();
            if x.is_finite() && x > 0.0 && x <= 1.0 {
                Some(x)
            } else {
                checker.problem(
                    format!("{at}.precision"),
                    v.span(),
                    format!("must be above 0 and at most 1, got {x}"),
                    Some("the relative width of the final bracket: 0.05 stops when the failing rate is within 5% of the passing one"),
                );
                None
            }
        }
    };
    let max_probes = match &f.max_probes {
        None => Some(DEFAULT_MAX_PROBES),
        Some(v) => checker.count(&format!("{at}.max_probes"), v, 2),
    };
    Some(FindMaxSpec {
        p99_bound_ms: bound?,
        precision: precision?,
        max_probes: max_probes?,
    })
}

/// Every case must fit in the worker's timeout: warm-up, then one run per rate or up to
/// `max_probes` runs for the search. False (with a problem) when one may not.
fn fits_the_timeout(
    spec: &ServerSpec,
    e: &Spanned<ServerEntry>,
    at: &str,
    checker: &mut Checker,
    settings: &Settings,
) -> bool {
    let s = e.get_ref();
    let run_s = spec.duration_s + spec.drain_s;
    let warm = settings.max_warmup_s.max(settings.warmup_s);
    let (needed, field, span, what) = match (&spec.find_max, &s.find_max_qps) {
        (Some(f), Some(entry)) => (
            warm + f.max_probes as f64 * run_s,
            format!("{at}.find_max_qps"),
            entry.span(),
            format!("max_probes ({}) x (duration_s + drain_s)", f.max_probes),
        ),
        _ => (
            warm + run_s,
            format!("{at}.duration_s"),
            s.duration_s
                .as_ref()
                .map(|v| v.span())
                .unwrap_or_else(|| e.span()),
            "duration_s + drain_s".to_string(),
        ),
    };
    if needed + 5.0 > settings.case_timeout_s {
        checker.problem(
            field,
            span,
            format!(
                "a server case may take max_warmup_s + {what} = {needed:.1} s, too close to settings.case_timeout_s ({} s)",
                settings.case_timeout_s
            ),
            Some("raise settings.case_timeout_s (at least 5 s more than that), or shorten duration_s / drain_s / max_probes"),
        );
        return false;
    }
    true
}

/// A server case: warm-up at batch 1 (its latency estimates the capacity), one untimed pass
/// at every other batch size, then one server run at the target rate, or the max-QPS search.
/// Each run's arrival schedule is drawn before its window; energy spans every run.
fn run_server<W: Driven>(
    pipeline: &mut W,
    cfg: &SamplerConfig,
    load: &ServerLoad,
    observer: &mut dyn Observer,
) -> Result<(measure::Sampled, ServerMeasurement), <W as Workload>::Error> {
    let warm = measure::warm_up(pipeline, cfg, observer)?;
    // Under a time budget (`--quick`), once it is spent: no more untimed passes, no further
    // probe of a search, and a run's schedule cut to what is left (`budget_window_s`).
    let spent = || warm.deadline.is_some_and(|d| Instant::now() >= d);
    let mut cut = false;
    for k in 2..=load.max_batch {
        if spent() {
            cut = true;
            break;
        }
        BatchWorkload::run_batch(pipeline, k)?;
    }
    let serve_cfg = ServeConfig {
        max_batch: load.max_batch,
        max_wait: Duration::from_secs_f64(load.max_wait_ms / 1e3),
        max_queue: load.max_queue,
        duration: Duration::from_secs_f64(load.duration_s),
        drain: Duration::from_secs_f64(load.drain_s),
    };
    let budget_probes = match &load.target {
        ServerTarget::Qps(_) => 1,
        ServerTarget::FindMax(f) => f.max_probes,
    };
    let budget_s = budget_probes as f64 * load.run_bound_s();
    let started = Instant::now();
    let mut probes_done = 0u64;
    observer.window_started();
    let mut probe = |rate: f64| -> Result<ProbeRaw, <W as Workload>::Error> {
        let (window_s, shortened) = server::budget_window_s(load.duration_s, warm.deadline);
        cut |= shortened;
        let mut run_cfg = serve_cfg.clone();
        run_cfg.duration = Duration::from_secs_f64(window_s);
        run_cfg.drain = run_cfg.drain.min(run_cfg.duration);
        // Drawn before the window: the schedule and every buffer `serve` writes.
        let arrivals = server::poisson_schedule(rate, window_s, load.seed);
        let record = server::serve(pipeline, &arrivals, &run_cfg)?;
        let p = ProbeRaw::from_record(rate, window_s, &arrivals, &record, load.late_ms);
        probes_done += 1;
        observer.progress(&Progress {
            phase: Phase::Sampling,
            iterations: probes_done,
            elapsed_s: started.elapsed().as_secs_f64(),
            budget_s,
            noise: None,
        });
        Ok(p)
    };
    let measurement = match &load.target {
        ServerTarget::Qps(rate) => ServerMeasurement {
            probes: vec![probe(*rate)?],
            chosen: Some(0),
            search: None,
        },
        ServerTarget::FindMax(f) => {
            let capacity = 1.0 / warm.per_call_s.max(1e-9);
            let bound = server::SearchBound {
                p99_bound_ms: f.p99_bound_ms,
                precision: f.precision,
                max_probes: f.max_probes,
                deadline: warm.deadline,
            };
            let s = server::find_max_qps_within(capacity, &bound, load.duration_s, &mut probe)?;
            ServerMeasurement {
                chosen: s.best,
                search: Some(SearchRaw {
                    p99_bound_ms: f.p99_bound_ms,
                    precision: f.precision,
                    max_probes: f.max_probes,
                    start_capacity_qps: s.start_capacity_qps,
                    passing_qps: s.passing_qps,
                    failing_qps: s.failing_qps,
                    end: s.end,
                }),
                probes: s.probes,
            }
        }
    };
    let cut = cut
        || measurement
            .search
            .as_ref()
            .is_some_and(|s| s.end == SearchEnd::Budget);
    let served: usize = measurement.probes.iter().map(|p| p.served).sum();
    observer.window_ended(served);
    let measured_s = measurement.probes.iter().map(|p| p.end_s).sum();
    let sampled = measure::Sampled {
        samples_ns: Vec::new(),
        stage_samples_ns: Vec::new(),
        first_iteration_ns: warm.first_iteration_ns,
        warmup_iterations: warm.warmup_iterations,
        warmup_s: warm.warmup_s,
        warmup_end: warm.warmup_end,
        warmup_trace_ms: warm.trace_ms,
        measured_s,
        stop_reason: if cut {
            StopReason::Budget
        } else {
            StopReason::Queries
        },
        // No median stopping rule in a server run; the case reports no noise figure.
        noise: 0.0,
    };
    Ok((sampled, measurement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_in_ids_are_short_and_exact() {
        assert_eq!(fmt_rate(200.0), "200");
        assert_eq!(fmt_rate(12.5), "12.5");
        assert_eq!(fmt_rate(0.25), "0.25");
        let load = ServerLoad {
            target: ServerTarget::FindMax(FindMaxSpec {
                p99_bound_ms: 20.0,
                precision: 0.05,
                max_probes: 12,
            }),
            duration_s: 2.0,
            max_batch: 4,
            max_wait_ms: 1.0,
            seed: 1,
            late_ms: None,
            max_queue: None,
            drain_s: 1.0,
        };
        assert_eq!(load.id_part(), "max-p99-20ms/b4");
    }
}
