//! The load scenarios beyond single-stream and offline: `server` (Poisson arrivals at a target
//! rate, or a search for the highest rate under a p99 bound) and `multi_stream` (queries of N
//! samples). Plain data after validation, and the validation of their tables.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::schema::{FindMaxEntry, MultiStreamEntry, ServerEntry};
use super::Validator;
use crate::schema::{fmt_rate, Settings};

/// Default length of one server run's arrival schedule.
pub const DEFAULT_SERVER_DURATION_S: f64 = 2.0;
/// Default bound on serving what is still queued after the schedule ends.
pub const DEFAULT_DRAIN_S: f64 = 1.0;
/// Default relative precision of the max-QPS search: it stops when the lowest failing rate
/// is within 5% of the highest passing one.
pub const DEFAULT_SEARCH_PRECISION: f64 = 0.05;
/// Default cap on server runs in one search.
pub const DEFAULT_MAX_PROBES: usize = 12;
/// Default queries of a multi-stream case.
pub const DEFAULT_MULTI_STREAM_QUERIES: usize = 1000;

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

/// `[scenarios.multi_stream]` after validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStreamSpec {
    /// One case per value: samples in each query.
    pub samples_per_query: Vec<usize>,
    /// Queries measured per case (after warm-up), issued back to back.
    pub queries: usize,
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

/// The load of a case whose scenario needs more than a batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Load {
    Server(ServerLoad),
    MultiStream {
        samples_per_query: usize,
        queries: usize,
    },
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

impl Validator {
    pub(super) fn server(
        &mut self,
        e: &Spanned<ServerEntry>,
        settings: &Settings,
    ) -> Option<ServerSpec> {
        let at = "scenarios.server";
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
                    self.problem(
                        format!("{at}.target_qps[{i}]"),
                        list.span(),
                        format!("must be a rate above zero (queries per second), got {q}"),
                        Some("as in target_qps = [50, 200]"),
                    );
                    ok = false;
                }
            }
            if list.get_ref().is_empty() && s.find_max_qps.is_none() {
                self.problem(
                    format!("{at}.target_qps"),
                    list.span(),
                    "must not be empty",
                    Some(
                        "list the offered rates, as in target_qps = [50, 200], or use find_max_qps",
                    ),
                );
                ok = false;
            }
        }
        rates.sort_by(f64::total_cmp);
        if s.target_qps.is_none() && s.find_max_qps.is_none() {
            self.problem(
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
                let r = self.find_max(&format!("{at}.find_max_qps"), f.get_ref());
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
            match self.positive_number(&format!("{at}.duration_s"), v, "seconds", false) {
                Some(x) => spec.duration_s = x,
                None => ok = false,
            }
        }
        if let Some(v) = &s.drain_s {
            match self.positive_number(&format!("{at}.drain_s"), v, "seconds", true) {
                Some(x) => spec.drain_s = x,
                None => ok = false,
            }
        }
        if let Some(v) = &s.max_wait_ms {
            match self.positive_number(&format!("{at}.max_wait_ms"), v, "milliseconds", true) {
                Some(x) => spec.max_wait_ms = x,
                None => ok = false,
            }
        }
        if let Some(v) = &s.late_ms {
            match self.positive_number(&format!("{at}.late_ms"), v, "milliseconds", false) {
                Some(x) => spec.late_ms = Some(x),
                None => ok = false,
            }
        }
        if let Some(v) = &s.max_queue {
            match self.count(&format!("{at}.max_queue"), v, 1) {
                Some(n) => spec.max_queue = Some(n),
                None => ok = false,
            }
        }
        if let Some(v) = &s.max_batch {
            match self.counts(&format!("{at}.max_batch"), v, 1, false) {
                Some(mut b) => {
                    let mut seen = std::collections::BTreeSet::new();
                    b.retain(|x| seen.insert(*x));
                    spec.max_batch = b;
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        // Every case must fit in the worker's timeout: warm-up, then one run per rate or up
        // to `max_probes` runs for the search.
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
            self.problem(
                field,
                span,
                format!(
                    "a server case may take max_warmup_s + {what} = {needed:.1} s, too close to settings.case_timeout_s ({} s)",
                    settings.case_timeout_s
                ),
                Some("raise settings.case_timeout_s (at least 5 s more than that), or shorten duration_s / drain_s / max_probes"),
            );
            return None;
        }
        Some(spec)
    }

    fn find_max(&mut self, at: &str, f: &FindMaxEntry) -> Option<FindMaxSpec> {
        let bound = self.positive_number(
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
                    self.problem(
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
            Some(v) => self.count(&format!("{at}.max_probes"), v, 2),
        };
        Some(FindMaxSpec {
            p99_bound_ms: bound?,
            precision: precision?,
            max_probes: max_probes?,
        })
    }

    pub(super) fn multi_stream(
        &mut self,
        e: &Spanned<MultiStreamEntry>,
    ) -> Option<MultiStreamSpec> {
        let at = "scenarios.multi_stream";
        let m = e.get_ref();
        let mut n = self.counts(
            &format!("{at}.samples_per_query"),
            &m.samples_per_query,
            1,
            false,
        )?;
        let mut seen = std::collections::BTreeSet::new();
        n.retain(|x| seen.insert(*x));
        let queries = match &m.queries {
            None => DEFAULT_MULTI_STREAM_QUERIES,
            Some(v) => self.count(&format!("{at}.queries"), v, 1)?,
        };
        Some(MultiStreamSpec {
            samples_per_query: n,
            queries,
        })
    }
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
