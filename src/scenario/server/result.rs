//! A server case's result: its record (`schema::ServerInfo`) assembled from the worker's
//! raw runs, and its part of `check`.
//!
//! The check (same offered rate and seed on both sides, by their id): latency p50 and p99 as
//! for any case, the reason noting that queueing correlates samples, so the interval may be
//! too narrow; no throughput (the offered load sets it); a `saturation` row, regressed when
//! the candidate stopped keeping up, and latency rows inconclusive when either side
//! saturated. Max-QPS searches compare `max_qps` only: each side's maximum lies in
//! `[passing, failing)`, so the change's interval is `[c_pass / b_fail - 1, c_fail / b_pass - 1]`
//! (method `bracket`); without a failing rate on both sides it is inconclusive. A probe's
//! pass or fail is itself a noisy p99 estimate, which the bracket does not carry.

use super::{ServerLoad, ServerMeasurement, ServerTarget};
use crate::compare::{KindMetrics, MaxQpsSearch, MetricComparison, Verdict};
use crate::measure::server::ProbeRaw;
use crate::schema::{
    fmt_rate, CaseResult, CaseStatus, LatencyMs, ProbeInfo, ScenarioRecord, SearchInfo,
    SearchEnd, ServerInfo, Settings, StopReason, SERVER_WAIT,
};
use crate::stats;

/// A server case's record: its load's settings and the reported probe's figures (zeros
/// when no probe is reported).
fn server_info(
    load: &ServerLoad,
    p: Option<&ProbeRaw>,
    search: Option<SearchInfo>,
) -> ServerInfo {
    let target_qps = match &load.target {
        ServerTarget::Qps(q) => Some(*q),
        ServerTarget::FindMax(_) => None,
    };
    ServerInfo {
        target_qps,
        offered_qps: p.map(|p| p.offered_qps()).unwrap_or(0.0),
        achieved_qps: p.map(|p| p.achieved_qps()).unwrap_or(0.0),
        queries: p.map(|p| p.queries).unwrap_or(0),
        served: p.map(|p| p.served).unwrap_or(0),
        dropped: p.map(|p| p.dropped).unwrap_or(0),
        unserved: p.map(|p| p.unserved).unwrap_or(0),
        late: p.map(|p| p.late).unwrap_or(0),
        late_ms: load.late_ms,
        saturated: p.is_some_and(|p| p.saturated()),
        duration_s: load.duration_s,
        drain_s: load.drain_s,
        max_batch: load.max_batch,
        max_wait_ms: load.max_wait_ms,
        max_queue: load.max_queue,
        seed: load.seed,
        batches: p.map(|p| p.batches).unwrap_or(0),
        mean_batch: p.map(|p| p.mean_batch).unwrap_or(0.0),
        idle_lag_p50_ms: p.and_then(|p| p.idle_lag_p50_ms),
        idle_lag_max_ms: p.and_then(|p| p.idle_lag_max_ms),
        wait: SERVER_WAIT.to_string(),
        search,
    }
}

/// A server case's figures: the reported probe's latency, the rate, the search's probes.
pub(super) fn apply_server(
    r: &mut CaseResult,
    load: &ServerLoad,
    sm: &ServerMeasurement,
    s: &Settings,
) {
    let chosen = sm.chosen.and_then(|i| sm.probes.get(i));
    let search = sm.search.as_ref().map(|search| SearchInfo {
        p99_bound_ms: search.p99_bound_ms,
        precision: search.precision,
        max_probes: search.max_probes,
        start_capacity_qps: search.start_capacity_qps,
        max_qps: search.passing_qps,
        failing_qps: search.failing_qps,
        end: search.end,
        probes: sm
            .probes
            .iter()
            .map(|p| ProbeInfo {
                target_qps: p.target_qps,
                offered_qps: p.offered_qps(),
                achieved_qps: p.achieved_qps(),
                queries: p.queries,
                served: p.served,
                dropped: p.dropped,
                unserved: p.unserved,
                saturated: p.saturated(),
                passed: p.passes(search.p99_bound_ms),
                latency_ms: stats::summarize(&p.latencies_ms, s.bootstrap_resamples, s.seed),
            })
            .collect(),
    });
    r.record = Some(ScenarioRecord::Server(Box::new(server_info(
        load, chosen, search,
    ))));
    r.throughput_per_s = chosen.map(|p| p.achieved_qps());
    r.measured_s = chosen.map(|p| p.end_s);
    r.noise = None;
    r.latency_ms = chosen.and_then(|p| {
        stats::summarize(&p.latencies_ms, s.bootstrap_resamples, s.seed).map(|summary| LatencyMs {
            samples: p.latencies_ms.clone(),
            summary,
        })
    });
    let served = chosen.map(|p| p.served).unwrap_or(0);
    (r.status, r.error) = match (chosen, &sm.search) {
        (None, Some(search)) => (
            CaseStatus::Ok,
            Some(format!(
                "no rate met p99 <= {} ms (lowest tried {} queries/s); see server.search.probes",
                search.p99_bound_ms,
                fmt_rate(search.failing_qps.unwrap_or(0.0))
            )),
        ),
        (None, None) => (CaseStatus::Failed, Some("the server run recorded nothing".into())),
        (Some(_), _) if (served as u64) < s.min_iterations => (
            CaseStatus::Noisy,
            Some(format!(
                "only {served} queries served, fewer than min_iterations = {}: raise duration_s or the rate",
                s.min_iterations
            )),
        ),
        (Some(_), _) => (CaseStatus::Ok, None),
    };
    if r.stop_reason == Some(StopReason::Budget) && r.status != CaseStatus::Failed {
        r.status = CaseStatus::Partial;
        r.error = Some(budget_reason(load, sm, s));
    }
}

/// Why a server case is `partial`: what the process's time budget cut (`--quick`).
fn budget_reason(load: &ServerLoad, sm: &ServerMeasurement, s: &Settings) -> String {
    let shortest = sm
        .probes
        .iter()
        .map(|p| p.duration_s)
        .fold(f64::INFINITY, f64::min);
    let mut what = Vec::new();
    if shortest < load.duration_s {
        what.push(format!(
            "a run's schedule cut to {shortest:.2} s of duration_s = {} s",
            load.duration_s
        ));
    }
    if let Some(search) = sm.search.as_ref().filter(|x| x.end == SearchEnd::Budget) {
        what.push(format!(
            "the search stopped after {} of max_probes = {} probes",
            sm.probes.len(),
            search.max_probes
        ));
    }
    if what.is_empty() {
        what.push("the untimed passes at larger batches stopped".into());
    }
    format!(
        "cut short by the time budget of {} s per process (--quick): {}",
        s.budget_s.map_or_else(|| "?".into(), |b| b.to_string()),
        what.join("; ")
    )
}

/// A server case's part of the metric table. A search reports `max_qps`, compared by its
/// bracket; its latency is that of its best probe, at a rate of its own, so it is compared
/// through `max_qps`, never against another run's probe at another rate. A server's achieved
/// rate is set by its offered load, so it is no measure of speed (no throughput), and its
/// latency depends on that load (no per-process figures).
pub(super) fn metrics(case: &CaseResult) -> KindMetrics<'_> {
    let Some(server) = case.server() else {
        return KindMetrics::common();
    };
    KindMetrics::offered_load(server.search.as_ref().map(|s| MaxQpsSearch {
        max_qps: s.max_qps,
        failing_qps: s.failing_qps,
        unit: "queries/s",
        bounds: format!("p99 <= {} ms", s.p99_bound_ms),
    }))
}

/// Server cases: a candidate that stops keeping up with the offered load is regressed (and
/// one that starts keeping up is improved); when either side was saturated its latency is
/// bounded by the run's drain deadline, not a property of the model, so latency verdicts
/// become inconclusive. Otherwise latency compares like any other, with a caveat in the
/// reason: queueing makes consecutive latencies correlated, so the bootstrap interval (which
/// assumes independent samples) may be too narrow.
pub(super) fn server_rows(b: &CaseResult, c: &CaseResult, rows: &mut Vec<MetricComparison>) {
    let (Some(bs), Some(cs)) = (b.server(), c.server()) else {
        return;
    };
    if bs.search.is_some() || cs.search.is_some() {
        return;
    }
    let how = |s: &ServerInfo| {
        format!(
            "{} dropped, {} unserved, {:.1} of {:.1} queries/s served",
            s.dropped, s.unserved, s.achieved_qps, s.offered_qps
        )
    };
    let saturated = bs.saturated || cs.saturated;
    for row in rows.iter_mut() {
        if !row.metric.starts_with("latency_") {
            continue;
        }
        if saturated {
            row.verdict = Verdict::Inconclusive;
            row.reason = format!(
                "saturated ({}): latency is bounded by the drain deadline, not a property of the model",
                if bs.saturated && cs.saturated {
                    "both runs"
                } else if bs.saturated {
                    "baseline"
                } else {
                    "candidate"
                }
            );
        } else {
            row.reason
                .push_str(" (server: queueing correlates samples; the interval may be narrow)");
        }
    }
    let verdict = match (bs.saturated, cs.saturated) {
        (false, true) => Some((
            Verdict::Regressed,
            format!(
                "the candidate no longer keeps up with {} queries/s offered: {}",
                fmt_rate(cs.target_qps.unwrap_or(cs.offered_qps)),
                how(cs)
            ),
        )),
        (true, false) => Some((
            Verdict::Improved,
            format!(
                "the candidate keeps up with the offered load the baseline could not: {}",
                how(cs)
            ),
        )),
        (true, true) => Some((
            Verdict::Inconclusive,
            format!(
                "both runs saturated: baseline {}; candidate {}",
                how(bs),
                how(cs)
            ),
        )),
        (false, false) => None,
    };
    if let Some((verdict, reason)) = verdict {
        let mut row = MetricComparison::status(verdict, reason);
        row.metric = "saturation".into();
        rows.push(row);
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{case, latencies, verdict_of};
    use crate::compare::{compare_case, CaseComparison};
    use crate::scenario::Checks;
    use crate::schema::{CheckConfig, Scenario, SearchEnd};

    /// A matched pair compared with the scenario kinds' part of the check.
    fn one(b: CaseResult, c: CaseResult) -> CaseComparison {
        compare_case(&b, &c, &CheckConfig::default(), 2000, 7, None, &Checks)
    }

    fn server_info(
        saturated: bool,
        search: Option<SearchInfo>,
    ) -> ServerInfo {
        ServerInfo {
            target_qps: search.is_none().then_some(100.0),
            offered_qps: 100.0,
            achieved_qps: if saturated { 60.0 } else { 100.0 },
            queries: 2000,
            served: if saturated { 1200 } else { 2000 },
            dropped: 0,
            unserved: if saturated { 800 } else { 0 },
            late: 0,
            late_ms: None,
            saturated,
            duration_s: 20.0,
            drain_s: 1.0,
            max_batch: 1,
            max_wait_ms: 0.0,
            max_queue: None,
            seed: 1,
            batches: 2000,
            mean_batch: 1.0,
            idle_lag_p50_ms: None,
            idle_lag_max_ms: None,
            wait: SERVER_WAIT.into(),
            search,
        }
    }

    fn search(max_qps: f64, failing_qps: Option<f64>) -> SearchInfo {
        SearchInfo {
            p99_bound_ms: 20.0,
            precision: 0.05,
            max_probes: 12,
            start_capacity_qps: 1000.0,
            max_qps: Some(max_qps),
            failing_qps,
            end: SearchEnd::Converged,
            probes: Vec::new(),
        }
    }

    #[test]
    fn server_cases_compare_latency_and_saturation_not_throughput() {
        let server_case = |saturated: bool, median: f64, seed: u64| {
            let mut c = case(
                "s/server/q100/b1",
                latencies(2000, median, seed),
                CaseStatus::Ok,
            );
            c.scenario = Scenario::Server;
            c.record = Some(ScenarioRecord::Server(Box::new(server_info(
                saturated, None,
            ))));
            c
        };
        // Same load, same speed: unchanged, and no throughput row (the offered load sets it).
        let cc = one(server_case(false, 1.0, 1), server_case(false, 1.0, 2));
        assert!(cc.metrics.iter().all(|m| m.metric != "throughput"));
        assert_eq!(verdict_of(&cc, "latency_p50"), Verdict::Unchanged);
        assert!(cc.metrics[0].reason.contains("queueing correlates samples"));
        // 20% slower without saturating: latency regresses.
        let cc = one(server_case(false, 1.0, 1), server_case(false, 1.2, 2));
        assert_eq!(verdict_of(&cc, "latency_p50"), Verdict::Regressed);
        // The candidate stops keeping up: regressed on saturation, latency not judged.
        let cc = one(server_case(false, 1.0, 1), server_case(true, 50.0, 2));
        assert_eq!(verdict_of(&cc, "saturation"), Verdict::Regressed);
        assert_eq!(verdict_of(&cc, "latency_p99"), Verdict::Inconclusive);
        assert_eq!(cc.verdict, Verdict::Regressed);
        // Both saturated: nothing to conclude.
        let cc = one(server_case(true, 50.0, 1), server_case(true, 50.0, 2));
        assert_eq!(cc.verdict, Verdict::Inconclusive);
        // Only the baseline saturated: improved.
        let cc = one(server_case(true, 50.0, 1), server_case(false, 1.0, 2));
        assert_eq!(verdict_of(&cc, "saturation"), Verdict::Improved);
    }

    #[test]
    fn max_qps_compares_the_search_brackets() {
        let search_case = |lo: f64, hi: Option<f64>| {
            let mut c = case(
                "s/server/max-p99-20ms/b1",
                latencies(500, 1.0, 1),
                CaseStatus::Ok,
            );
            c.scenario = Scenario::Server;
            c.record = Some(ScenarioRecord::Server(Box::new(server_info(
                false,
                Some(search(lo, hi)),
            ))));
            c
        };
        // Brackets [1000, 1050) and [950, 1000): the ratio lies in (0.905, 1.0): within 10%.
        let cc = one(
            search_case(1000.0, Some(1050.0)),
            search_case(950.0, Some(1000.0)),
        );
        assert!(cc.metrics.iter().all(|m| !m.metric.starts_with("latency")));
        let m = cc.metrics.iter().find(|m| m.metric == "max_qps").unwrap();
        assert_eq!(m.method, "bracket");
        let ci = m.change_ci.unwrap();
        assert!((ci[0] - (950.0 / 1050.0 - 1.0)).abs() < 1e-12 && ci[1].abs() < 1e-12);
        assert_eq!(m.verdict, Verdict::Inconclusive, "{m:?}");
        // Half the rate, brackets far apart: regressed.
        let cc = one(
            search_case(1000.0, Some(1050.0)),
            search_case(500.0, Some(525.0)),
        );
        assert_eq!(verdict_of(&cc, "max_qps"), Verdict::Regressed);
        // Overlapping within the threshold: unchanged.
        let cc = one(
            search_case(1000.0, Some(1010.0)),
            search_case(1000.0, Some(1010.0)),
        );
        assert_eq!(verdict_of(&cc, "max_qps"), Verdict::Unchanged);
        // A search that never failed has no upper bracket: inconclusive.
        let cc = one(search_case(1000.0, None), search_case(500.0, Some(525.0)));
        assert_eq!(verdict_of(&cc, "max_qps"), Verdict::Inconclusive);
    }
}
