//! Scenarios: the kind a case ran, and the record a server or multi-stream case adds to its
//! figures.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::Summary;

/// The scenario a case ran: how its queries were issued. `as_str` is its name in case ids,
/// run files and tables, and its `[scenarios.<name>]` table. One variant per kind registered
/// in `scenario/mod.rs` (a new kind adds its variant here, named as its registration line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    SingleStream,
    Offline,
    /// Poisson arrivals at a target rate; latency includes queueing.
    Server,
    /// Queries of N samples issued back to back; a query's latency is its slowest sample.
    MultiStream,
    /// A language model's prompt of N tokens into an empty KV cache (llama-bench `ppN`).
    Prefill,
    /// M new tokens one at a time after a context of D tokens (llama-bench `tgM@dD`).
    Decode,
    /// A prompt of N tokens, then M new tokens (llama-bench `ppN+tgM`).
    Generate,
    /// Generation requests by Poisson arrivals, served one sequence at a time.
    LlmServer,
}

impl Scenario {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scenario::SingleStream => "single_stream",
            Scenario::Offline => "offline",
            Scenario::Server => "server",
            Scenario::MultiStream => "multi_stream",
            Scenario::Prefill => "prefill",
            Scenario::Decode => "decode",
            Scenario::Generate => "generate",
            Scenario::LlmServer => "llm_server",
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scenario's own record of a case: one variant per scenario kind that adds figures of its
/// own (a new kind adds its variant here, with its key in `record_of_case`). Written into the
/// case as one key named after the kind: `"server": {...}` or `"multi_stream": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioRecord {
    /// Offered and achieved rate, dropped and late queries, the search's probes
    /// (docs/scenarios.md, "Server"). The case's `latency_ms` holds every served query's
    /// latency.
    Server(Box<ServerInfo>),
    /// Samples per query and queries; the case's `latency_ms` holds one latency per query (its
    /// slowest sample).
    MultiStream(MultiStreamInfo),
    /// A language model's test and its token figures (TTFT, ITL, TPOT, tokens/s, KV cache);
    /// the case's `latency_ms` holds each repetition's primary figure.
    Prefill(super::LlmCaseInfo),
    Decode(super::LlmCaseInfo),
    Generate(super::LlmCaseInfo),
    /// Offered and achieved requests/s, TTFT and TPOT from arrival, the search's probes; the
    /// case's `latency_ms` holds each served request's end-to-end latency.
    LlmServer(Box<super::LlmServerInfo>),
}

/// Reads `CaseResult::record` from the case's keys. A malformed record is an error (serde's
/// own `Option` of a flattened enum would read it as absent), and so are two records.
pub(super) fn record_of_case<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ScenarioRecord>, D::Error> {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(default)]
        server: Option<ServerInfo>,
        #[serde(default)]
        multi_stream: Option<MultiStreamInfo>,
        #[serde(default)]
        prefill: Option<super::LlmCaseInfo>,
        #[serde(default)]
        decode: Option<super::LlmCaseInfo>,
        #[serde(default)]
        generate: Option<super::LlmCaseInfo>,
        #[serde(default)]
        llm_server: Option<super::LlmServerInfo>,
    }
    let keys = Keys::deserialize(d)?;
    let mut records = [
        keys.server.map(|s| ScenarioRecord::Server(Box::new(s))),
        keys.multi_stream.map(ScenarioRecord::MultiStream),
        keys.prefill.map(ScenarioRecord::Prefill),
        keys.decode.map(ScenarioRecord::Decode),
        keys.generate.map(ScenarioRecord::Generate),
        keys.llm_server
            .map(|s| ScenarioRecord::LlmServer(Box::new(s))),
    ]
    .into_iter()
    .flatten();
    let record = records.next();
    if records.next().is_some() {
        return Err(D::Error::custom(
            "a case has at most one scenario record (`server`, `multi_stream`, `prefill`, `decode`, `generate` or `llm_server`), not two",
        ));
    }
    Ok(record)
}

/// How the server dispatcher waits for the next arrival, recorded with every server case.
pub const SERVER_WAIT: &str =
    "sleep until 1 ms before the arrival, then spin on the monotonic clock";

/// A server case (docs/scenarios.md, "Server"). For a search, the top-level figures are those
/// of the highest passing probe (absent figures: no probe passed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The rate asked for (queries/s); absent for a search.
    pub target_qps: Option<f64>,
    /// Queries in the schedule / its duration: the Poisson draw's own rate.
    pub offered_qps: f64,
    /// Served queries / max(duration, last completion).
    pub achieved_qps: f64,
    pub queries: usize,
    pub served: usize,
    /// Refused at arrival because `max_queue` queries were waiting.
    pub dropped: usize,
    /// Still queued when `duration_s + drain_s` passed.
    pub unserved: usize,
    /// Served but slower than `late_ms` (0 without `late_ms`).
    pub late: usize,
    pub late_ms: Option<f64>,
    /// Dropped or unserved queries, or achieved < 90% of offered.
    pub saturated: bool,
    pub duration_s: f64,
    pub drain_s: f64,
    pub max_batch: usize,
    pub max_wait_ms: f64,
    pub max_queue: Option<usize>,
    pub seed: u64,
    pub batches: usize,
    pub mean_batch: f64,
    /// Lateness of the dispatcher's wake-ups after idle waits (batch start - arrival), ms.
    pub idle_lag_p50_ms: Option<f64>,
    pub idle_lag_max_ms: Option<f64>,
    /// How the dispatcher waits ([`SERVER_WAIT`]).
    pub wait: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchInfo>,
}

/// `find_max_qps`: every probe, and the bracket it ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchInfo {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    /// 1 / the warm-up's batch-1 latency: the first probe runs at half of it.
    pub start_capacity_qps: f64,
    /// The highest passing rate (the reported maximum), if any passed.
    pub max_qps: Option<f64>,
    /// The lowest failing rate, if any failed: the true maximum lies in [max_qps, failing_qps).
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
    /// In the order run.
    pub probes: Vec<ProbeInfo>,
}

/// One server run of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub target_qps: f64,
    pub offered_qps: f64,
    pub achieved_qps: f64,
    pub queries: usize,
    pub served: usize,
    pub dropped: usize,
    pub unserved: usize,
    pub saturated: bool,
    /// p99 <= the bound and nothing dropped or unserved.
    pub passed: bool,
    /// Statistics of the served queries' latency, ms (with the p99's 95% CI).
    pub latency_ms: Option<Summary>,
}

/// A multi-stream case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStreamInfo {
    pub samples_per_query: usize,
    pub queries: usize,
    /// How a query's samples are run: `one batch` of `samples_per_query`.
    pub execution: String,
}

/// How the max-QPS search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchEnd {
    /// The failing rate is within `1 + precision` of the passing rate.
    Converged,
    /// `max_probes` runs were spent first.
    MaxProbes,
    /// Even the lowest rate tried failed (the bound is below what the model can do).
    NoPassingRate,
    /// The process's time budget (`--quick`) was spent first: the case is `partial`.
    Budget,
}

/// `200`, `12.5`: a rate as it appears in a case id.
pub fn fmt_rate(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::super::CaseResult;
    use super::*;

    /// A case as a run file holds it, with `extra` keys after `quality` (where the record
    /// and `embedding` go).
    fn case_json(scenario: &str, extra: &str) -> String {
        format!(
            r#"{{"id":"m-baseline/cpu-t1/{scenario}/b1","model_name":"m","variant":"baseline","target":"cpu-t1","device":"cpu","threads":1,"scenario":"{scenario}","batch_size":1,"status":"ok","error":null,"latency_ms":null,"throughput_per_s":null,"warmup_iterations":null,"warmup_s":null,"measured_s":null,"stop_reason":null,"noise":null,"threads_in_effect":null,"model":{{"params":1,"weight_bytes":4,"flops_per_sample":2,"params_nonzero":null,"artifact_bytes":null,"artifact_gzip_bytes":null,"compression_rate":null,"dtype":null,"float_layers":null,"sparsity":null,"recipe":null,"artifact":null,"training":null}},"clock_overhead_ns":null,"build_s":null,"memory":null,"energy":null,"load":null,"cold_start":null,"timed":["forward"],"stages":null,"quality":null{extra}}}"#
        )
    }

    const SERVER: &str = r#""server":{"target_qps":100.0,"offered_qps":98.5,"achieved_qps":98.0,"queries":1970,"served":1970,"dropped":0,"unserved":0,"late":0,"late_ms":null,"saturated":false,"duration_s":20.0,"drain_s":1.0,"max_batch":4,"max_wait_ms":2.0,"max_queue":null,"seed":7,"batches":1500,"mean_batch":1.3,"idle_lag_p50_ms":0.01,"idle_lag_max_ms":0.2,"wait":"spin"}"#;
    const MULTI_STREAM: &str =
        r#""multi_stream":{"samples_per_query":4,"queries":30,"execution":"one batch of 4"}"#;
    const EMBEDDING: &str = r#""embedding":{"dataset":"2 sentences","sentences":2,"reference":"m-baseline","mean_cosine":0.99,"min_cosine":0.98}"#;

    fn read(json: &str) -> Result<CaseResult, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Each record is written as the key it had before the field was typed, at the same place
    /// (after `profile`, before `embedding`): a case reads and writes back byte for byte.
    #[test]
    fn records_round_trip_byte_for_byte_under_their_old_keys() {
        for (scenario, record) in [("server", SERVER), ("multi_stream", MULTI_STREAM)] {
            let json = case_json(scenario, &format!(",{record},{EMBEDDING}"));
            let case = read(&json).unwrap();
            assert_eq!(serde_json::to_string(&case).unwrap(), json, "{scenario}");
        }
        let server = read(&case_json("server", &format!(",{SERVER}"))).unwrap();
        assert_eq!(server.scenario, Scenario::Server);
        assert_eq!(server.server().map(|s| s.queries), Some(1970));
        assert!(server.multi_stream().is_none());
        let ms = read(&case_json("multi_stream", &format!(",{MULTI_STREAM}"))).unwrap();
        assert_eq!(ms.multi_stream().map(|m| m.samples_per_query), Some(4));
        assert!(ms.server().is_none());
    }

    #[test]
    fn a_case_without_a_record_writes_no_key() {
        let json = case_json("offline", "");
        let case = read(&json).unwrap();
        assert_eq!((case.scenario, &case.record), (Scenario::Offline, &None));
        assert_eq!(serde_json::to_string(&case).unwrap(), json);
    }

    /// A broken record is an error naming the field, not a record silently dropped; so are
    /// two records in one case.
    #[test]
    fn a_malformed_or_second_record_is_refused() {
        let broken = SERVER.replace(r#""queries":1970"#, r#""queries":"many""#);
        let e = read(&case_json("server", &format!(",{broken}"))).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = read(&case_json("server", &format!(",{SERVER},{MULTI_STREAM}"))).unwrap_err();
        assert!(e.to_string().contains("at most one scenario record"), "{e}");
    }

    #[test]
    fn scenarios_have_their_run_file_names() {
        for s in [
            Scenario::SingleStream,
            Scenario::Offline,
            Scenario::Server,
            Scenario::MultiStream,
            Scenario::Prefill,
            Scenario::Decode,
            Scenario::Generate,
            Scenario::LlmServer,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(s.to_string(), s.as_str());
        }
    }
}
