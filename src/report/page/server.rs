//! The page's server-scenario table.

use serde::Serialize;

use super::super::data::ReportData;
use super::super::format;
use super::dash;

/// A server case: the load it was offered, what it served, and its latency; for a max-QPS
/// search, the result and how the search went.
#[derive(Debug, Serialize)]
pub(super) struct ServerRow {
    run: String,
    id: String,
    offered: String,
    achieved: String,
    served: String,
    dropped: String,
    late: String,
    saturated: bool,
    p50: String,
    p99: String,
    mean_batch: String,
    search: String,
}

/// Server cases: offered and achieved load, what was served, latency, and the max-QPS search.
pub(super) fn server_rows(d: &ReportData) -> Vec<ServerRow> {
    d.cases
        .iter()
        .filter_map(|c| {
            let s = c.case.server()?;
            let lat = c.case.latency_ms.as_ref().map(|l| &l.summary);
            let search = s
                .search
                .as_ref()
                .map(|x| {
                    let max = match (x.max_qps, x.failing_qps) {
                        (Some(lo), Some(hi)) => format!(
                            "max {} queries/s (fails at {})",
                            format::rate(lo),
                            format::rate(hi)
                        ),
                        (Some(lo), None) => format!(
                            "at least {} queries/s (no failing rate found)",
                            format::rate(lo)
                        ),
                        (None, Some(hi)) => {
                            format!("none: even {} queries/s failed", format::rate(hi))
                        }
                        (None, None) => "no probe".to_string(),
                    };
                    let end = match x.end {
                        crate::schema::SearchEnd::Converged => format!(
                            "converged to {}%",
                            crate::schema::fmt_rate(100.0 * x.precision)
                        ),
                        crate::schema::SearchEnd::MaxProbes => "stopped at max_probes".to_string(),
                        crate::schema::SearchEnd::NoPassingRate => "no passing rate".to_string(),
                        crate::schema::SearchEnd::Budget => {
                            "cut short by the time budget (--quick)".to_string()
                        }
                    };
                    format!(
                        "p99 <= {} ms: {max}; {} probes, {end}",
                        crate::schema::fmt_rate(x.p99_bound_ms),
                        x.probes.len()
                    )
                })
                .unwrap_or_default();
            Some(ServerRow {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                offered: format::rate(s.offered_qps),
                achieved: format::rate(s.achieved_qps),
                served: format!("{} / {}", s.served, s.queries),
                dropped: format!("{} + {}", s.dropped, s.unserved),
                late: match s.late_ms {
                    Some(b) => format!("{} (> {} ms)", s.late, crate::schema::fmt_rate(b)),
                    None => dash(),
                },
                saturated: s.saturated,
                p50: lat.map(|l| format::ms(l.p50)).unwrap_or_else(dash),
                p99: lat
                    .map(|l| {
                        format!(
                            "{} [{}, {}]",
                            format::ms(l.p99),
                            format::ms(l.p99_ci[0]),
                            format::ms(l.p99_ci[1])
                        )
                    })
                    .unwrap_or_else(dash),
                mean_batch: format!("{:.2}", s.mean_batch),
                search,
            })
        })
        .collect()
}
