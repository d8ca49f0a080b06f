//! The server and multi-stream scenarios through the real binary: a rate far below capacity
//! behaves like single-stream, one far above reports saturation within a bounded time, the
//! max-QPS search records its probes, multi-stream reports one latency per query, and `check`
//! judges server cases (saturation, the search's bracket).
//!
//! One test, so this binary runs alone (`cargo test` runs test binaries one after another):
//! its bounds on measured latencies and windows share the machine with no other test.

use std::path::Path;

use inferbench::results;
use inferbench::schema::{CaseResult, CaseStatus, RunResult};

mod support;
use support::{assert_cut_by_budget, inferbench, text};

const SUITE: &str = r#"
[suite]
name = "server-test"

[[models]]
name = "cnn"
arch = "cnn"
input = [16, 16, 1]
conv_channels = [8, 16]
dense = [32]
classes = 10

[[targets]]
device = "cpu"
threads = [1]

[scenarios.single_stream]

[scenarios.server]
target_qps = [40, 40000]
find_max_qps = { p99_bound_ms = 200, max_probes = 4, precision = 0.25 }
duration_s = 1.0
drain_s = 0.3
late_ms = 20

[scenarios.multi_stream]
samples_per_query = [4]
queries = 30

[settings]
warmup_s = 0.1
max_warmup_s = 0.3
min_time_s = 0.2
max_time_s = 0.5
min_iterations = 5
max_noise = 0.5
"#;

fn case<'a>(run: &'a RunResult, id_part: &str) -> &'a CaseResult {
    run.cases
        .iter()
        .find(|c| c.id.contains(id_part))
        .unwrap_or_else(|| panic!("no case {id_part}"))
}

#[test]
fn server_and_multi_stream_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("server.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let output = dir.path().join("run.json");
    let out = inferbench(&[
        "run",
        suite.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("server case"), "{stdout}");
    assert!(stdout.contains("SATURATED"), "{stdout}");
    let run = results::read_json(&output).unwrap();
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "cnn-baseline/cpu-t1/single_stream/b1",
            "cnn-baseline/cpu-t1/server/q40/b1",
            "cnn-baseline/cpu-t1/server/q40000/b1",
            "cnn-baseline/cpu-t1/server/max-p99-200ms/b1",
            "cnn-baseline/cpu-t1/multi_stream/n4",
        ]
    );

    // Far below capacity: every query served, latency close to single-stream's.
    let single = case(&run, "single_stream").latency_ms.as_ref().unwrap();
    let low = case(&run, "q40/");
    let s = low.server().unwrap();
    assert_eq!((s.dropped, s.unserved), (0, 0), "{s:?}");
    assert!(!s.saturated);
    assert_eq!(s.served, s.queries);
    assert!(
        s.queries > 15 && s.queries < 80,
        "Poisson(40) drew {}",
        s.queries
    );
    let l = low.latency_ms.as_ref().unwrap();
    assert_eq!(l.samples.len(), s.served, "one latency per served query");
    // Generous bounds for a shared machine: no queue builds at 40 queries/s.
    assert!(
        l.summary.p50 < 3.0 * single.summary.p50 + 1.0,
        "server p50 {} vs single-stream p50 {}",
        l.summary.p50,
        single.summary.p50
    );
    assert!(l.summary.p50 > 0.5 * single.summary.min);
    assert!(
        (s.offered_qps - s.queries as f64).abs() < 1e-9,
        "1 s schedule"
    );

    // Far above capacity: saturation is reported and the run stopped at the deadline.
    let high = case(&run, "q40000/");
    let s = high.server().unwrap();
    assert!(s.saturated, "{s:?}");
    assert!(s.unserved + s.dropped > 0);
    assert_eq!(s.served + s.unserved + s.dropped, s.queries);
    // Served no faster than one worker can run the model (its best single-stream latency),
    // whatever the offered rate: the machine's speed, not a fixed figure, sets the bound.
    let capacity_qps = 1000.0 / single.summary.min;
    assert!(
        s.achieved_qps < s.offered_qps && s.achieved_qps <= 1.2 * capacity_qps,
        "achieved {} q/s, offered {}, capacity {capacity_qps}",
        s.achieved_qps,
        s.offered_qps
    );
    let window = high.measured_s.unwrap();
    assert!(
        window <= 1.0 + 0.3 + 0.5,
        "the window ran {window} s, past duration + drain"
    );
    assert!(s.late > 0 && s.late <= s.served);
    assert_eq!(high.status, CaseStatus::Ok, "{:?}", high.error);

    // The search: every probe recorded, each with its own statistics.
    let search_case = case(&run, "max-p99-200ms");
    let search = search_case.server().unwrap().search.as_ref().unwrap();
    assert!(!search.probes.is_empty() && search.probes.len() <= 4);
    for p in &search.probes {
        assert_eq!(
            p.passed,
            p.latency_ms.as_ref().is_some_and(|l| l.p99 <= 200.0) && p.dropped + p.unserved == 0,
            "{p:?}"
        );
    }
    // The search starts at half the capacity its warm-up measured and doubles: twice the
    // capacity saturates the server (most of a 1 s schedule is left unserved), so four probes
    // bracket the maximum on any machine where half the capacity meets a 200 ms p99.
    let max = search
        .max_qps
        .unwrap_or_else(|| panic!("no passing rate: {search:?}"));
    let failing = search
        .failing_qps
        .unwrap_or_else(|| panic!("no failing rate: {search:?}"));
    assert!(max < failing, "{max} {failing}");
    let best = search.probes.iter().find(|p| p.target_qps == max).unwrap();
    assert!(best.passed);
    assert!(search_case.latency_ms.is_some());

    // Multi-stream: one latency per query of 4 samples.
    let ms = case(&run, "multi_stream/n4");
    assert_eq!(ms.batch_size, 4);
    assert_eq!(ms.multi_stream().unwrap().queries, 30);
    assert_eq!(ms.latency_ms.as_ref().unwrap().samples.len(), 30);
    let tput = ms.throughput_per_s.unwrap();
    let mean = ms.latency_ms.as_ref().unwrap().summary.mean;
    assert!(tput > 0.5 * 4.0 / (mean / 1e3) && tput < 1.5 * 4.0 / (mean / 1e3));

    // The CSV has the server columns.
    let csv = std::fs::read_to_string(results::csv_path(&output)).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "server_offered_qps",
        "server_dropped",
        "server_saturated",
        "max_qps",
        "samples_per_query",
    ] {
        assert!(header.contains(col), "{col} missing from {header}");
    }

    // The report draws latency against offered load and lists the server cases.
    let report_dir = dir.path().join("report");
    let out = inferbench(&[
        "report",
        output.to_str().unwrap(),
        "--out",
        report_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(report_dir.join("server-load.png").is_file());
    let md = std::fs::read_to_string(report_dir.join("summary.md")).unwrap();
    assert!(
        md.contains("## Server scenario") && md.contains("**saturated**"),
        "{md}"
    );

    check_judges_server_cases(dir.path(), &output);
    a_time_budget_cuts_server_and_multi_stream_cases_short(dir.path());
}

/// Under a time budget (`--quick`, here capped lower by the suite's `budget_s`) server runs,
/// searches and multi-stream queries stop where it runs out, and each case is `partial`
/// with stop reason `budget`, never `ok`. Sized so that no machine fits them in: a 1 s
/// schedule cannot run inside 0.3 s, nor can a million queries of 4 samples.
fn a_time_budget_cuts_server_and_multi_stream_cases_short(dir: &Path) {
    let suite = dir.join("budget.toml");
    let body = SUITE
        .replace("queries = 30", "queries = 1000000")
        .replace("max_noise = 0.5", "max_noise = 0.5\nbudget_s = 0.3");
    std::fs::write(&suite, body).unwrap();
    let output = dir.join("budget.json");
    let out = inferbench(&[
        "run",
        suite.to_str().unwrap(),
        "--quick",
        "--filter",
        "server|multi_stream",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let run = results::read_json(&output).unwrap();
    assert_eq!(run.settings.budget_s, Some(0.3));
    assert_eq!(run.cases.len(), 4);
    for c in &run.cases {
        assert_cut_by_budget(c, "0.3");
    }
    let q40 = case(&run, "q40/").server().unwrap();
    assert!(q40.queries > 0, "{q40:?}");
    assert!(
        case(&run, "q40/")
            .error
            .as_deref()
            .unwrap()
            .contains("of duration_s = 1 s"),
        "{:?}",
        case(&run, "q40/").error
    );
    let ms = case(&run, "multi_stream/n4");
    let taken = ms.latency_ms.as_ref().unwrap().samples.len();
    assert!((1..1_000_000).contains(&taken), "{taken} queries");
    assert!(
        ms.error
            .as_deref()
            .unwrap()
            .contains("the scenario's 1000000 queries"),
        "{:?}",
        ms.error
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("4 partial (cut short by --quick's time budget)"),
        "{stdout}"
    );
}

/// A/A passes; a candidate that saturates where the baseline did not is a regression; a
/// search whose whole bracket lies below the baseline's is a regression.
fn check_judges_server_cases(dir: &Path, baseline: &Path) {
    let out = inferbench(&[
        "check",
        "--baseline",
        baseline.to_str().unwrap(),
        "--candidate",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "A/A: {}", text(&out.stdout));

    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(baseline).unwrap()).unwrap();
    for c in v["cases"].as_array_mut().unwrap() {
        let id = c["id"].as_str().unwrap().to_string();
        if id.contains("q40/") {
            c["server"]["saturated"] = true.into();
            c["server"]["unserved"] = 5.into();
        }
        if id.contains("max-p99") {
            let search = &mut c["server"]["search"];
            let lo = search["max_qps"].as_f64().expect("the search bracketed");
            let hi = search["failing_qps"]
                .as_f64()
                .expect("the search bracketed");
            search["max_qps"] = (lo / 4.0).into();
            search["failing_qps"] = (hi / 4.0).into();
        }
    }
    let candidate = dir.join("candidate.json");
    std::fs::write(&candidate, serde_json::to_string(&v).unwrap()).unwrap();
    let json = dir.join("check.json");
    let out = inferbench(&[
        "check",
        "--baseline",
        baseline.to_str().unwrap(),
        "--candidate",
        candidate.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let verdicts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = |id: &str| {
        verdicts["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"].as_str().unwrap().contains(id))
            .unwrap()["metrics"]
            .as_array()
            .unwrap()
            .clone()
    };
    let low = rows("q40/");
    let sat = low.iter().find(|m| m["metric"] == "saturation").unwrap();
    assert_eq!(sat["verdict"], "regressed", "{sat}");
    assert!(low
        .iter()
        .filter(|m| m["metric"].as_str().unwrap().starts_with("latency_"))
        .all(|m| m["verdict"] == "inconclusive"));
    let search = rows("max-p99");
    let m = search
        .iter()
        .find(|m| m["metric"] == "max_qps")
        .unwrap_or_else(|| panic!("no max_qps row: {search:?}"));
    // Both sides bracketed the maximum, so the brackets are compared.
    assert_eq!(m["method"], "bracket", "{m}");
    assert_eq!(m["verdict"], "regressed", "{m}");
}
