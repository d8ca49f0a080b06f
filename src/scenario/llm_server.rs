//! LLM server: generation requests (a prompt of N tokens, M output tokens) arrive by a seeded
//! Poisson process at a target rate, served one sequence at a time; TTFT and TPOT count from
//! each request's arrival, so queueing counts. `find_max_qps` searches the highest rate whose
//! p99 TTFT and p99 TPOT both meet MLPerf-style bounds. The serving, the statistics and the
//! search are `llm::server`'s; this kind validates the table, makes the cases, runs them on
//! the case's language model (reached through `Driven::model_mut`), and makes their record
//! and their part of `check` (docs/llm.md, "Server").

use serde::Deserialize;
use toml::Spanned;

use super::{Cell, DriveError, Driven, Measured, ScenarioKind};
use crate::compare::{KindMetrics, MaxQpsSearch};
use crate::llm::server::{
    run_server, LlmFindMax, LlmRequest, LlmServerLoad, LlmServerMeasurement, LlmServerTarget,
};
use crate::measure::{self, Observer, SamplerConfig, Workload};
use crate::model::llm::LlmLoaded;
use crate::model::Capability;
use crate::schema::{
    CaseResult, CaseStatus, LatencyMs, ScenarioRecord, SearchEnd, Settings, StopReason,
};
use crate::spec::Checker;
use crate::stats;

pub const DEFAULT_LLM_DURATION_S: f64 = 10.0;
pub const DEFAULT_LLM_DRAIN_S: f64 = 5.0;
pub const DEFAULT_LLM_PRECISION: f64 = 0.1;
pub const DEFAULT_LLM_MAX_PROBES: usize = 8;
pub const DEFAULT_LLM_MIN_REQUESTS: usize = 5;

/// The LLM server kind.
pub struct LlmServer;

/// `[scenarios.llm_server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmServerEntry {
    /// Every request's prompt length (default 128).
    pub prompt_tokens: Option<Spanned<i64>>,
    /// Every request's output length, the first token included (default 32).
    pub output_tokens: Option<Spanned<i64>>,
    /// Rates to run, requests/s: one case each.
    pub target_qps: Option<Spanned<Vec<f64>>>,
    /// The search for the highest rate meeting both p99 bounds: one case.
    pub find_max_qps: Option<Spanned<LlmFindMaxEntry>>,
    pub duration_s: Option<Spanned<f64>>,
    pub drain_s: Option<Spanned<f64>>,
    pub max_queue: Option<Spanned<i64>>,
    pub seed: Option<u64>,
}

/// `find_max_qps = { ttft_p99_ms = 2000, tpot_p99_ms = 100 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmFindMaxEntry {
    pub ttft_p99_ms: Spanned<f64>,
    pub tpot_p99_ms: Spanned<f64>,
    pub precision: Option<Spanned<f64>>,
    pub max_probes: Option<Spanned<i64>>,
    pub min_requests: Option<Spanned<i64>>,
}

/// The table after validation: the cases' loads, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct LlmServerSpec {
    pub loads: Vec<LlmServerLoad>,
}

impl ScenarioKind for LlmServer {
    type Entry = LlmServerEntry;
    type Spec = LlmServerSpec;
    type Case = LlmServerLoad;
    type Raw = LlmServerMeasurement;

    const EXAMPLE: &'static str =
        "[scenarios.llm_server] with find_max_qps = { ttft_p99_ms = 2000, tpot_p99_ms = 100 }";
    const NEEDS: Capability = Capability::Generation;

    fn validate(
        &self,
        entry: &Spanned<LlmServerEntry>,
        at: &str,
        checker: &mut Checker,
        settings: &Settings,
    ) -> Option<LlmServerSpec> {
        let e = entry.get_ref();
        let count = |checker: &mut Checker, name: &str, v: &Option<Spanned<i64>>, min, default| {
            match v {
                None => Some(default),
                Some(v) => checker.count(&format!("{at}.{name}"), v, min),
            }
        };
        let prompt_tokens = count(checker, "prompt_tokens", &e.prompt_tokens, 1, 128);
        let output_tokens = count(checker, "output_tokens", &e.output_tokens, 2, 32);
        let duration_s = checker.seconds(
            &format!("{at}.duration_s"),
            &e.duration_s,
            DEFAULT_LLM_DURATION_S,
            false,
        );
        let drain_s =
            checker.seconds(&format!("{at}.drain_s"), &e.drain_s, DEFAULT_LLM_DRAIN_S, true);
        let max_queue = match &e.max_queue {
            None => Some(None),
            Some(v) => checker.count(&format!("{at}.max_queue"), v, 1).map(Some),
        };
        let mut targets = Vec::new();
        if let Some(rates) = &e.target_qps {
            for &q in rates.get_ref() {
                if !(q.is_finite() && q > 0.0) {
                    checker.problem(
                        format!("{at}.target_qps"),
                        rates.span(),
                        format!("must be more than zero requests/s, got {q}"),
                        Some("rates are requests per second, as in [0.5, 2]"),
                    );
                    return None;
                }
                targets.push(LlmServerTarget::Qps(q));
            }
        }
        if let Some(f) = &e.find_max_qps {
            targets.push(LlmServerTarget::FindMax(find_max(f, at, checker)?));
        }
        if targets.is_empty() {
            checker.problem(
                at,
                entry.span(),
                "an llm_server scenario needs `target_qps` and/or `find_max_qps`",
                Some("as in find_max_qps = { ttft_p99_ms = 2000, tpot_p99_ms = 100 }"),
            );
            return None;
        }
        let request = LlmRequest {
            prompt_tokens: prompt_tokens?,
            output_tokens: output_tokens?,
        };
        let max_queue = max_queue?;
        let seed = e.seed.unwrap_or(settings.seed);
        let loads = targets
            .into_iter()
            .map(|target| LlmServerLoad {
                target,
                request,
                duration_s,
                drain_s,
                max_queue,
                seed,
            })
            .collect();
        Some(LlmServerSpec { loads })
    }

    /// One case per rate and one for the search: `pp128+tg32/qps0.5/b1`, `.../max/b1`.
    fn expand(&self, spec: &LlmServerSpec) -> Vec<Cell<LlmServerLoad>> {
        spec.loads
            .iter()
            .map(|load| {
                let target = match &load.target {
                    LlmServerTarget::Qps(q) => format!("qps{q}"),
                    LlmServerTarget::FindMax(_) => "max".into(),
                };
                Cell {
                    id_part: format!("{}/{target}/b1", load.request.label()),
                    batch_size: 1,
                    case: load.clone(),
                }
            })
            .collect()
    }

    fn context_tokens(&self, spec: &LlmServerSpec) -> usize {
        spec.loads
            .iter()
            .map(|l| l.request.context())
            .max()
            .unwrap_or(0)
    }

    fn single_process(&self) -> bool {
        true
    }

    fn measure<W: Driven>(
        &self,
        load: &LlmServerLoad,
        pipeline: &mut W,
        cfg: &SamplerConfig,
        observer: &mut dyn Observer,
    ) -> Result<Measured<LlmServerMeasurement>, <W as Workload>::Error> {
        let loaded = pipeline
            .model_mut()
            .and_then(|m| m.downcast_mut::<LlmLoaded>())
            .ok_or_else(|| {
                DriveError(
                    "llm_server runs a language model (arch `llm`), and this model is not one"
                        .into(),
                )
            })?;
        let run = run_server(&mut loaded.model, load, cfg, observer)
            .map_err(|e| DriveError(e.to_string()))?;
        let m = run.measurement;
        let measured_s = m.probes.iter().map(|p| p.end_s).sum();
        let warm = run.warm;
        let sampled = measure::Sampled {
            samples_ns: Vec::new(),
            stage_samples_ns: Vec::new(),
            first_iteration_ns: warm.first_iteration_ns,
            warmup_iterations: warm.warmup_iterations,
            warmup_s: warm.warmup_s,
            warmup_end: warm.warmup_end,
            warmup_trace_ms: warm.trace_ms,
            measured_s,
            stop_reason: if run.budget_cut {
                StopReason::Budget
            } else {
                StopReason::Queries
            },
            // No median stopping rule in a server run; the case reports no noise figure.
            noise: 0.0,
        };
        Ok(Measured {
            sampled,
            raw: Some(m),
        })
    }

    fn assemble(
        &self,
        load: &LlmServerLoad,
        raw: &LlmServerMeasurement,
        result: &mut CaseResult,
        s: &Settings,
    ) {
        apply(result, load, raw, s)
    }

    fn metrics<'a>(&self, case: &'a CaseResult) -> KindMetrics<'a> {
        metrics(case)
    }
}

fn find_max(f: &Spanned<LlmFindMaxEntry>, at: &str, checker: &mut Checker) -> Option<LlmFindMax> {
    let f = f.get_ref();
    let at = format!("{at}.find_max_qps");
    let ttft = checker.positive_number(&format!("{at}.ttft_p99_ms"), &f.ttft_p99_ms, "ms", false);
    let tpot = checker.positive_number(&format!("{at}.tpot_p99_ms"), &f.tpot_p99_ms, "ms", false);
    let precision = match &f.precision {
        None => Some(DEFAULT_LLM_PRECISION),
        Some(v) => checker.fraction(
            &format!("{at}.precision"),
            v,
            true,
            "the search stops when failing / passing rate <= 1 + precision, as in 0.1",
        ),
    };
    let max_probes = match &f.max_probes {
        None => Some(DEFAULT_LLM_MAX_PROBES),
        Some(v) => checker.count(&format!("{at}.max_probes"), v, 1),
    };
    let min_requests = match &f.min_requests {
        None => Some(DEFAULT_LLM_MIN_REQUESTS),
        Some(v) => checker.count(&format!("{at}.min_requests"), v, 1),
    };
    Some(LlmFindMax {
        ttft_p99_ms: ttft?,
        tpot_p99_ms: tpot?,
        precision: precision?,
        max_probes: max_probes?,
        min_requests: min_requests?,
    })
}

/// The case's record and figures: its latency is the reported probe's end-to-end request
/// latency (arrival to last token), its throughput the achieved requests/s.
fn apply(r: &mut CaseResult, load: &LlmServerLoad, m: &LlmServerMeasurement, s: &Settings) {
    let info = m.info(load, s.bootstrap_resamples, s.seed);
    let chosen = m.chosen.and_then(|i| m.probes.get(i));
    r.throughput_per_s = chosen.map(|p| p.achieved_qps());
    r.measured_s = chosen.map(|p| p.end_s);
    r.noise = None;
    r.bytes_per_batch = None;
    r.latency_ms = chosen.and_then(|p| {
        stats::summarize(&p.e2e_ms, s.bootstrap_resamples, s.seed).map(|summary| LatencyMs {
            samples: p.e2e_ms.clone(),
            summary,
        })
    });
    let served = chosen.map(|p| p.served).unwrap_or(0);
    (r.status, r.error) = match (chosen, &info.search) {
        (None, Some(search)) => (
            CaseStatus::Ok,
            Some(format!(
                "no rate met p99 TTFT <= {} ms and p99 TPOT <= {} ms; see llm_server.search.probes",
                search.ttft_p99_bound_ms, search.tpot_p99_bound_ms
            )),
        ),
        (None, None) => (
            CaseStatus::Failed,
            Some("the server run recorded nothing".into()),
        ),
        (Some(_), _) if (served as u64) < s.min_iterations => (
            CaseStatus::Noisy,
            Some(format!(
                "only {served} requests served, fewer than min_iterations = {}: raise duration_s or the rate",
                s.min_iterations
            )),
        ),
        (Some(_), _) => (CaseStatus::Ok, None),
    };
    if r.stop_reason == Some(StopReason::Budget) && r.status != CaseStatus::Failed {
        let shortest = m
            .probes
            .iter()
            .map(|p| p.duration_s)
            .fold(f64::INFINITY, f64::min);
        r.status = CaseStatus::Partial;
        r.error = Some(format!(
            "cut short by the time budget of {} s per process (--quick): {} probes, the shortest schedule {shortest:.2} s of duration_s = {} s{}",
            s.budget_s.map_or_else(|| "?".into(), |b| b.to_string()),
            m.probes.len(),
            load.duration_s,
            match &m.search {
                Some(x) if x.end == SearchEnd::Budget => "; the search stopped before its bracket closed",
                _ => "",
            }
        ));
    }
    r.record = Some(ScenarioRecord::LlmServer(Box::new(info)));
}

/// Its part of `check`: a search's highest passing rate (compared by its bracket); a fixed
/// rate's request latency (arrival to last token, every served request's, so compared on
/// its samples). A server's achieved rate follows its offered load, so it is no measure of
/// speed (no throughput).
fn metrics(case: &CaseResult) -> KindMetrics<'_> {
    let Some(ScenarioRecord::LlmServer(info)) = &case.record else {
        return KindMetrics::common();
    };
    KindMetrics::offered_load(info.search.as_ref().map(|s| MaxQpsSearch {
        max_qps: s.max_qps,
        failing_qps: s.failing_qps,
        unit: "requests/s",
        bounds: format!(
            "p99 TTFT <= {} ms, p99 TPOT <= {} ms",
            s.ttft_p99_bound_ms, s.tpot_p99_bound_ms
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> (Option<LlmServerSpec>, Vec<String>) {
        let entry: Spanned<LlmServerEntry> = toml::from_str(text).unwrap();
        let mut checker = Checker::new(text);
        let spec = LlmServer.validate(&entry, "scenarios.llm_server", &mut checker, &Settings::default());
        let problems = checker.problems().iter().map(|p| p.to_string()).collect();
        (spec, problems)
    }

    #[test]
    fn rates_and_a_search_expand_into_cases() {
        let (spec, problems) = validate(
            "prompt_tokens = 16\noutput_tokens = 4\ntarget_qps = [0.5, 2]\nfind_max_qps = { ttft_p99_ms = 500, tpot_p99_ms = 50 }\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let spec = spec.unwrap();
        let ids: Vec<String> = LlmServer.expand(&spec).into_iter().map(|c| c.id_part).collect();
        assert_eq!(ids, ["pp16+tg4/qps0.5/b1", "pp16+tg4/qps2/b1", "pp16+tg4/max/b1"]);
        assert_eq!(LlmServer.context_tokens(&spec), 19);
        let LlmServerTarget::FindMax(f) = &spec.loads[2].target else {
            panic!("the search is the last case")
        };
        assert_eq!((f.ttft_p99_ms, f.tpot_p99_ms, f.max_probes), (500.0, 50.0, 8));
    }

    #[test]
    fn bad_tables_are_problems_naming_the_field() {
        let (spec, problems) = validate("output_tokens = 1\n");
        assert!(spec.is_none());
        assert!(problems.iter().any(|p| p.contains("needs `target_qps` and/or `find_max_qps`")), "{problems:?}");
        let (_, problems) = validate("output_tokens = 1\ntarget_qps = [1]\n");
        assert!(problems.iter().any(|p| p.contains("output_tokens")), "{problems:?}");
        let (spec, problems) = validate("find_max_qps = { ttft_p99_ms = -1, tpot_p99_ms = 5 }\n");
        assert!(spec.is_none());
        assert!(problems.iter().any(|p| p.contains("ttft_p99_ms")), "{problems:?}");
    }
}
