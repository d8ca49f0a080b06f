//! The LLM charts' data shaping, on hand-made cases: rows grouped by test, the speed/quality
//! Pareto front, the server's load series, the memory rows; and every chart drawn.

use super::llm_load::llm_load_series;
use super::llm_memory::llm_memory_rows;
use super::llm_quality::{speed_front, speed_quality, speed_test};
use super::llm_rate::rate_rows;
use super::*;
use crate::report::{ReportData, RunInput};
use crate::schema::{
    CaseResult, CaseStatus, KvCacheInfo, LlmCaseInfo, LlmKld, LlmProbeInfo, LlmQuality,
    LlmSearchInfo, LlmServerInfo, MemoryInfo, RunResult, Scenario, ScenarioRecord, SearchEnd,
    TokenLatency, TokenRate,
};

fn summary(samples: &[f64]) -> crate::schema::Summary {
    crate::stats::summarize(samples, 200, 1).expect("samples")
}

/// A case of `variant` and `scenario` on `cpu-t<threads>`, no record yet.
fn case(variant: &str, scenario: Scenario, threads: usize) -> CaseResult {
    let mut c: CaseResult = serde_json::from_value(serde_json::json!({
        "id": format!("tiny-{variant}/cpu-t{threads}/{scenario}"),
        "model_name": "tiny",
        "variant": variant,
        "target": format!("cpu-t{threads}"),
        "device": "cpu",
        "threads": threads,
        "scenario": scenario.as_str(),
        "batch_size": 1,
        "status": "ok",
        "error": null,
        "model": {"params": 1000, "weight_bytes": 4000, "flops_per_sample": 0},
    }))
    .expect("a case");
    c.latency_ms = None;
    c
}

/// A prefill, decode or generate record of `test` at `rate` t/s (CI ± 10%), with ITL steps.
fn info(test: &str, rate: f64, context: usize) -> LlmCaseInfo {
    let steps: Vec<f64> = (0..40).map(|i| 1.0 + f64::from(i % 7) * 0.1).collect();
    LlmCaseInfo {
        test: test.into(),
        prompt_tokens: 8,
        new_tokens: 4,
        depth: 0,
        prompt: "seeded".into(),
        sampling: "greedy".into(),
        timed: "model calls".into(),
        fresh_cache: true,
        repetitions: 5,
        tokens_per_s: Some(TokenRate {
            per_repetition: vec![rate; 5],
            mean: rate,
            mean_ci: Some([rate * 0.9, rate * 1.1]),
            stdev: rate * 0.05,
        }),
        ttft_ms: None,
        itl_ms: Some(TokenLatency {
            summary: summary(&steps),
            samples: steps,
            p90_ci: [1.5, 1.7],
        }),
        tpot_ms: None,
        kv_cache: Some(KvCacheInfo {
            context_tokens: context,
            computed_bytes: context as u64 * 1024,
            rss_after_context_bytes: Some(50 << 20),
            rss_growth_bytes: Some(context as i64 * 2048),
        }),
        energy: None,
        generated: vec![1, 2, 3, 4],
    }
}

fn quality(ppl: f64, kld: Option<f64>) -> LlmQuality {
    LlmQuality {
        dataset: "ids".into(),
        tokens_file: "ids.npy".into(),
        tokenizer: "seeded".into(),
        ctx: 16,
        chunks: 2,
        scored_tokens: 16,
        perplexity: ppl,
        perplexity_uncertainty: ppl * 0.01,
        mean_nll: ppl.ln(),
        kld: kld.map(|mean| LlmKld {
            reference: "tiny-baseline".into(),
            mean,
            uncertainty: mean * 0.1,
            median: mean,
            p99: mean * 3.0,
            max: mean * 5.0,
            same_top: 0.9,
            same_top_uncertainty: 0.01,
            rms_dp: 0.01,
            rms_dp_uncertainty: 0.001,
            ln_ppl_ratio: 0.01,
            ln_ppl_ratio_uncertainty: 0.001,
            baseline_perplexity: 10.0,
        }),
        seconds: 0.1,
    }
}

fn llm_case(variant: &str, scenario: Scenario, test: &str, rate: f64) -> CaseResult {
    let mut c = case(variant, scenario, 1);
    let i = info(test, rate, 8);
    c.record = Some(match scenario {
        Scenario::Prefill => ScenarioRecord::Prefill(i),
        Scenario::Decode => ScenarioRecord::Decode(i),
        _ => ScenarioRecord::Generate(i),
    });
    c
}

fn data(cases: Vec<CaseResult>) -> ReportData {
    let mut run: RunResult =
        serde_json::from_str(include_str!("../../../tests/fixtures/runs/report.json"))
            .expect("the fixture run");
    run.cases = cases;
    ReportData::new(vec![RunInput {
        label: String::new(),
        source: "run.json".into(),
        run,
    }])
}

#[test]
fn speed_front_keeps_the_fast_and_the_accurate() {
    // (tokens/s, perplexity): higher speed and lower perplexity are better.
    let pts = [
        (100.0, 10.0),
        (200.0, 10.5),
        (150.0, 11.0),
        (50.0, 9.9),
        (200.0, 10.4),
    ];
    // Fastest first; (200, 10.5) and (150, 11.0) are beaten by (200, 10.4).
    assert_eq!(speed_front(&pts), vec![4, 0, 3]);
    // A slower and worse point is never on it; a NaN is left out.
    assert_eq!(
        speed_front(&[(10.0, 5.0), (5.0, 6.0), (f64::NAN, 1.0)]),
        vec![0]
    );
}

#[test]
fn rate_rows_group_by_test_and_leave_out_failed_cases() {
    let mut failed = llm_case("f16", Scenario::Decode, "tg4", 30.0);
    failed.status = CaseStatus::Failed;
    let d = data(vec![
        llm_case("baseline", Scenario::Decode, "tg4", 10.0),
        llm_case("baseline", Scenario::Decode, "tg4@d8", 9.0),
        llm_case("q4k", Scenario::Decode, "tg4", 20.0),
        llm_case("q4k", Scenario::Decode, "tg4@d8", 18.0),
        failed,
        llm_case("q4k", Scenario::Prefill, "pp8", 500.0),
    ]);
    let rows = rate_rows(&d, Scenario::Decode);
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "tiny-baseline · tg4 · cpu-t1",
            "tiny-q4k · tg4 · cpu-t1",
            "tiny-baseline · tg4@d8 · cpu-t1",
            "tiny-q4k · tg4@d8 · cpu-t1",
        ]
    );
    assert_eq!(rows[1].mean, 20.0);
    assert_eq!(rows[1].ci, Some([18.0, 22.0]));
    assert_eq!(rate_rows(&d, Scenario::Prefill).len(), 1);
    assert!(rate_rows(&d, Scenario::Generate).is_empty());
}

#[test]
fn quality_points_use_the_first_decode_test_and_give_the_baseline_zero_divergence() {
    let mut base = llm_case("baseline", Scenario::Decode, "tg4", 10.0);
    base.llm_quality = Some(quality(10.0, None));
    let mut q4k = llm_case("q4k", Scenario::Decode, "tg4", 20.0);
    q4k.llm_quality = Some(quality(10.6, Some(0.05)));
    // A variant of its own file: no baseline to diverge from, so no KL divergence.
    let mut other = llm_case("mine", Scenario::Decode, "tg4", 15.0);
    other.llm_quality = Some(quality(12.0, None));
    let mut prefill = llm_case("q4k", Scenario::Prefill, "pp8", 900.0);
    prefill.llm_quality = Some(quality(10.6, Some(0.05)));
    let d = data(vec![prefill, base, q4k, other]);
    let (scenario, test) = speed_test(&d).expect("a test");
    assert_eq!((scenario, test.as_str()), (Scenario::Decode, "tg4"));
    let pts = speed_quality(&d, scenario, &test);
    let got: Vec<(&str, f64, Option<f64>)> = pts
        .iter()
        .map(|p| (p.name.as_str(), p.tokens_per_s, p.kld.map(|k| k[0])))
        .collect();
    assert_eq!(
        got,
        [
            ("tiny-baseline", 10.0, Some(0.0)),
            ("tiny-q4k", 20.0, Some(0.05)),
            ("tiny-mine", 15.0, None),
        ]
    );
    assert_eq!(
        pts[0].kld,
        Some([0.0, 0.0]),
        "the baseline diverges not at all"
    );
    // Without quality anywhere there is no test to plot.
    let d = data(vec![llm_case("baseline", Scenario::Decode, "tg4", 10.0)]);
    assert_eq!(speed_test(&d), None);
}

fn probe(offered: f64, ttft_ms: Option<&[f64]>, saturated: bool) -> LlmProbeInfo {
    LlmProbeInfo {
        target_qps: offered,
        offered_qps: offered,
        achieved_qps: offered,
        generated_tokens_per_s: offered * 4.0,
        requests: 10,
        served: 10,
        dropped: 0,
        unserved: 0,
        saturated,
        passed: !saturated,
        ttft_ms: ttft_ms.map(summary),
        tpot_ms: ttft_ms.map(|t| summary(&t.iter().map(|x| x / 10.0).collect::<Vec<_>>())),
    }
}

fn server_case(variant: &str, probes: Vec<LlmProbeInfo>) -> CaseResult {
    let mut c = case(variant, Scenario::LlmServer, 1);
    let best = probes[0].clone();
    c.record = Some(ScenarioRecord::LlmServer(Box::new(LlmServerInfo {
        target_qps: None,
        prompt_tokens: 8,
        output_tokens: 4,
        offered_qps: best.offered_qps,
        achieved_qps: best.achieved_qps,
        generated_tokens_per_s: best.generated_tokens_per_s,
        requests: 10,
        served: 10,
        dropped: 0,
        unserved: 0,
        saturated: false,
        duration_s: 1.0,
        drain_s: 1.0,
        max_queue: None,
        seed: 1,
        ttft_ms: best.ttft_ms.clone(),
        tpot_ms: best.tpot_ms.clone(),
        e2e_ms: None,
        queue_ms: None,
        idle_lag_p50_ms: None,
        idle_lag_max_ms: None,
        wait: "sleep".into(),
        execution: "one at a time".into(),
        search: Some(LlmSearchInfo {
            ttft_p99_bound_ms: 50.0,
            tpot_p99_bound_ms: 5.0,
            precision: 0.1,
            max_probes: 4,
            min_requests: 3,
            start_capacity_qps: 4.0,
            max_qps: Some(2.0),
            failing_qps: Some(4.0),
            end: SearchEnd::Converged,
            probes,
        }),
    })));
    c
}

#[test]
fn load_series_take_every_probe_by_offered_rate_with_the_search_result() {
    let d = data(vec![server_case(
        "baseline",
        vec![
            probe(2.0, Some(&[10.0, 11.0, 12.0]), false),
            probe(4.0, Some(&[60.0, 70.0, 80.0]), true),
            probe(1.0, Some(&[9.0, 10.0, 11.0]), false),
            // A probe that served nothing has no figures and no point.
            probe(8.0, None, true),
        ],
    )]);
    let series = llm_load_series(&d);
    assert_eq!(series.len(), 1);
    let s = &series[0];
    assert_eq!(s.name, "tiny-baseline · cpu-t1 · pp8+tg4");
    let offered: Vec<f64> = s.points.iter().map(|p| p.offered_qps).collect();
    assert_eq!(offered, [1.0, 2.0, 4.0]);
    assert!(s.points[2].saturated && !s.points[0].saturated);
    assert_eq!(s.points[1].ttft[0], 11.0);
    assert!(s.points[1].tpot.is_some_and(|t| (t[0] - 1.1).abs() < 1e-9));
    assert_eq!(s.bounds, Some([50.0, 5.0]));
    assert_eq!(s.max_qps, Some(2.0));
}

#[test]
fn memory_rows_take_the_longest_context_and_the_largest_peak() {
    let mut short = llm_case("baseline", Scenario::Prefill, "pp8", 100.0);
    let mut long = llm_case("baseline", Scenario::Decode, "tg4@d8", 10.0);
    let ScenarioRecord::Decode(l) = long.record.as_mut().expect("record") else {
        panic!("a decode record")
    };
    l.kv_cache = info("tg4@d8", 10.0, 12).kv_cache;
    for (c, peak) in [(&mut short, 90u64 << 20), (&mut long, 70 << 20)] {
        c.memory = Some(MemoryInfo {
            rss_before_load_bytes: 10 << 20,
            rss_after_load_bytes: 40 << 20,
            peak_rss_bytes: peak,
            peak_heap_bytes: None,
            heap_pass_iterations: 0,
            weight_bytes: 4000,
            gpu: None,
        });
    }
    // Another kind's case in the same run has no row.
    let mut mlp = case("other", Scenario::SingleStream, 1);
    mlp.model_name = "mlp".into();
    let d = data(vec![short, long, mlp]);
    let rows = llm_memory_rows(&d);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.name, "tiny-baseline");
    assert_eq!(r.weight_bytes, Some(4000.0));
    assert_eq!(r.kv_computed, Some((12.0 * 1024.0, 12)));
    assert_eq!(r.kv_rss_growth, Some(12.0 * 2048.0));
    assert_eq!(r.peak_rss, Some(f64::from(90u32 << 20)));
}

/// A run with every LLM scenario draws every LLM chart, in the LLM section; a run without
/// any draws none and lists none as missing.
#[test]
fn llm_charts_are_drawn_only_for_runs_with_llm_cases() {
    let mut base = llm_case("baseline", Scenario::Decode, "tg4", 10.0);
    base.llm_quality = Some(quality(10.0, None));
    let mut q4k = llm_case("q4k", Scenario::Decode, "tg4", 20.0);
    q4k.llm_quality = Some(quality(10.6, Some(0.05)));
    let d = data(vec![
        llm_case("baseline", Scenario::Prefill, "pp8", 500.0),
        llm_case("baseline", Scenario::Generate, "pp8+tg4", 80.0),
        base,
        q4k,
        server_case(
            "baseline",
            vec![probe(1.0, Some(&[9.0, 10.0, 11.0]), false)],
        ),
    ]);
    let (charts, _) = render_all(&d).expect("charts");
    let llm: Vec<&str> = charts
        .iter()
        .filter(|c| c.section == Section::Llm)
        .map(|c| c.file.as_str())
        .collect();
    assert_eq!(
        llm,
        [
            "llm-tokens-prefill.png",
            "llm-tokens-decode.png",
            "llm-tokens-generate.png",
            "llm-itl.png",
            "llm-server-load.png",
            "llm-quality-ppl.png",
            "llm-quality-kld.png",
            "llm-memory.png",
        ]
    );
    for c in charts.iter().filter(|c| c.section == Section::Llm) {
        assert!(c.png.starts_with(b"\x89PNG"), "{}", c.file);
        assert!(c.caption.len() > 100, "{}: {}", c.file, c.caption);
    }

    let fixture = data(
        serde_json::from_str::<RunResult>(include_str!("../../../tests/fixtures/runs/report.json"))
            .expect("the fixture run")
            .cases,
    );
    let (charts, omitted) = render_all(&fixture).expect("charts");
    assert!(charts.iter().all(|c| c.section == Section::General));
    assert!(
        omitted
            .iter()
            .all(|o| !o.title.contains("LLM") && !o.title.contains("okens")),
        "{omitted:?}"
    );
}
