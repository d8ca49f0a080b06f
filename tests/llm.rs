//! Language models (`arch = "llm"`) through the real binary, on the tiny seeded GGUF the tests
//! write (`llm::tiny`: two layers, hidden 64): the prefill, decode, generate and llm_server
//! scenarios with their records, requantized variants with perplexity and KL divergence, the
//! llama-bench table, `check` on the LLM metrics, and bad GGUF files refused with exit 2
//! naming the file. The real SmolLM2 file is driven by tests/smollm2.rs.

use std::path::Path;

use inferbench::data::npy::{self, NpyData};
use inferbench::llm::tiny::{self, TinyLlama};
use inferbench::llm::tokens::random_tokens;
use inferbench::results;
use inferbench::schema::{CaseResult, RunResult, ScenarioRecord};

mod support;
use support::{inferbench, text};

const SUITE: &str = r#"
[suite]
name = "llm-tiny"

[[models]]
name = "tiny"
arch = "llm"
path = "tiny.gguf"
quality = { tokens = "ids.npy", ctx = 16, chunks = 2 }

[[variants]]
name = "baseline"
model = "tiny"
source = "baseline"

[[variants]]
name = "q4k"
model = "tiny"
source = "quantize"
dtype = "q4k"

[[variants]]
name = "f16"
model = "tiny"
source = "quantize"
dtype = "f16"

[[targets]]
device = "cpu"
threads = [1]

[scenarios.prefill]
prompt_tokens = [8]

[scenarios.decode]
new_tokens = [4]
depth = [0, 8]

[scenarios.generate]
prompt_tokens = [8]
new_tokens = [4]

[scenarios.llm_server]
prompt_tokens = 8
output_tokens = 4
find_max_qps = { ttft_p99_ms = 5000, tpot_p99_ms = 5000, max_probes = 2, min_requests = 3 }
duration_s = 0.3
drain_s = 0.2

[settings]
warmup_s = 0.02
max_warmup_s = 0.1
min_time_s = 0.05
max_time_s = 0.2
min_iterations = 5
max_noise = 0.5
"#;

/// The tiny GGUF, 64 seeded token ids with their provenance, and the suite, in `dir`.
fn write_inputs(dir: &Path) {
    TinyLlama::default().write(&dir.join("tiny.gguf")).unwrap();
    let ids: Vec<i64> = random_tokens(tiny::vocab_size(), 64, 3)
        .into_iter()
        .map(i64::from)
        .collect();
    npy::write(&dir.join("ids.npy"), &[64], NpyData::I64(&ids)).unwrap();
    let provenance =
        r#"{"text": "none", "tokenizer": "seeded random ids", "model": "tiny", "bos": false}"#;
    std::fs::write(dir.join("ids.json"), provenance).unwrap();
    std::fs::write(dir.join("suite.toml"), SUITE).unwrap();
}

fn case<'a>(run: &'a RunResult, id: &str) -> &'a CaseResult {
    run.cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id}"))
}

#[test]
fn tiny_llm_suite_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let suite = dir.path().join("suite.toml");
    let output = dir.path().join("run.json");
    let cache = dir.path().join("cache");
    let out = inferbench(&[
        "run",
        suite.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {stderr}\nstdout: {stdout}"
    );
    let run = results::read_json(&output).unwrap();
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    let mut expected = Vec::new();
    for v in ["baseline", "q4k", "f16"] {
        for part in [
            "prefill/pp8/b1",
            "decode/tg4/b1",
            "decode/tg4@d8/b1",
            "generate/pp8+tg4/b1",
            "llm_server/pp8+tg4/max/b1",
        ] {
            expected.push(format!("tiny-{v}/cpu-t1/{part}"));
        }
    }
    assert_eq!(ids, expected);

    // The llama-bench table and the quality table.
    for needle in [
        "pp8",
        "tg4@d8",
        "pp8+tg4",
        "t/s",
        "PPL",
        "KLD vs baseline",
        "same top %",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }

    // Prefill: TTFT and prompt tokens/s, the KV cache at 8 positions.
    let pp = case(&run, "tiny-baseline/cpu-t1/prefill/pp8/b1");
    let Some(ScenarioRecord::Prefill(p)) = &pp.record else {
        panic!("a prefill record: {:?}", pp.record)
    };
    let ttft = p.ttft_ms.as_ref().expect("TTFT");
    assert!(
        p.repetitions >= 5,
        "min_iterations repetitions: {}",
        p.repetitions
    );
    assert_eq!(ttft.samples.len(), p.repetitions);
    let rate = p.tokens_per_s.as_ref().expect("tokens/s");
    assert_eq!(rate.per_repetition.len(), p.repetitions);
    // Prompt tokens/s is 8 tokens over each repetition's TTFT.
    let want = 8.0 / (ttft.samples[0] / 1e3);
    assert!(
        (rate.per_repetition[0] - want).abs() < 1e-6 * want,
        "{rate:?} vs {want}"
    );
    let kv = p.kv_cache.as_ref().expect("KV cache");
    assert_eq!(kv.context_tokens, 8);
    // Two layers, K and V, KV_HEADS heads of EMBED / HEADS dims, f32, at each position.
    let per_position = 2 * 2 * tiny::KV_HEADS * (tiny::EMBED / tiny::HEADS) * 4;
    assert_eq!(kv.computed_bytes, (8 * per_position) as u64);
    assert!(kv.rss_after_context_bytes.is_some());
    assert!(p.timed.contains("outside"), "{}", p.timed);

    // Decode: ITL distribution with CIs, one step per new token after the first.
    let tg = case(&run, "tiny-baseline/cpu-t1/decode/tg4@d8/b1");
    let Some(ScenarioRecord::Decode(d)) = &tg.record else {
        panic!("a decode record")
    };
    let itl = d.itl_ms.as_ref().expect("ITL");
    assert_eq!(itl.samples.len() % d.repetitions, 0);
    assert!(itl.summary.p50_ci[0] <= itl.summary.p50 && itl.summary.p50 <= itl.summary.p50_ci[1]);
    assert!(itl.p90_ci[0] <= itl.p90_ci[1]);
    assert_eq!(d.kv_cache.as_ref().unwrap().context_tokens, 12);
    assert_eq!(d.generated.len(), 4, "greedy tokens of the last repetition");

    // Generate: TTFT and TPOT.
    let g = case(&run, "tiny-baseline/cpu-t1/generate/pp8+tg4/b1");
    let Some(ScenarioRecord::Generate(gen)) = &g.record else {
        panic!("a generate record")
    };
    assert!(gen.ttft_ms.is_some() && gen.tpot_ms.is_some());
    assert!(gen
        .energy
        .as_ref()
        .is_some_and(|e| e.joules_per_token > 0.0));

    // The server: the search's probes, TTFT and TPOT from arrival.
    let s = case(&run, "tiny-baseline/cpu-t1/llm_server/pp8+tg4/max/b1");
    let Some(ScenarioRecord::LlmServer(info)) = &s.record else {
        panic!("an llm_server record")
    };
    let search = info.search.as_ref().expect("a search");
    assert!(!search.probes.is_empty() && search.probes.len() <= 2);
    assert!(search.max_qps.is_some(), "generous bounds pass: {search:?}");
    assert!(info.ttft_ms.is_some() && info.tpot_ms.is_some());

    // Quality: once per variant; the baseline has no divergence from itself, q4k has some.
    let base_q = pp.llm_quality.as_ref().expect("baseline quality");
    assert!(base_q.perplexity.is_finite() && base_q.perplexity > 1.0);
    let q4k = case(&run, "tiny-q4k/cpu-t1/prefill/pp8/b1");
    let kld = q4k
        .llm_quality
        .as_ref()
        .and_then(|q| q.kld.as_ref())
        .expect("KLD");
    assert!(kld.mean > 0.0 && kld.p99 >= kld.mean, "{kld:?}");
    assert!(kld.same_top <= 1.0);
    // Hidden 64 rows do not fit q4k's 256-value blocks: every matrix fell back, listed.
    let info = &q4k.model;
    assert!(
        info.float_layers.as_ref().is_some_and(|f| !f.is_empty()),
        "fallbacks listed: {info:?}"
    );

    // `check` of the run against itself: the LLM metrics are compared and pass.
    let out = inferbench(&[
        "check",
        "--baseline",
        output.to_str().unwrap(),
        "--candidate",
        output.to_str().unwrap(),
    ]);
    let check = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{check}\n{}", text(&out.stderr));
    for metric in [
        "tokens_per_s",
        "ttft_p50",
        "itl_p99",
        "perplexity",
        "kld",
        "max_qps",
    ] {
        assert!(check.contains(metric), "no {metric} in check:\n{check}");
    }
}

#[test]
fn bad_gguf_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    std::fs::write(
        dir.path().join("not.gguf"),
        b"this is not a GGUF file at all",
    )
    .unwrap();
    let whole = std::fs::read(dir.path().join("tiny.gguf")).unwrap();
    std::fs::write(dir.path().join("cut.gguf"), &whole[..whole.len() / 2]).unwrap();
    for (file, says) in [
        ("missing.gguf", "missing.gguf"),
        ("not.gguf", "not.gguf"),
        ("cut.gguf", "cut.gguf"),
    ] {
        let suite = dir.path().join(format!("{file}.toml"));
        std::fs::write(
            &suite,
            SUITE.replace("\"tiny.gguf\"", &format!("\"{file}\"")),
        )
        .unwrap();
        let out = inferbench(&["run", suite.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("models[0].path"),
            "{file}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // A context longer than the model allows is refused before any case runs.
    let long = SUITE.replace("prompt_tokens = [8]", "prompt_tokens = [100000]");
    let suite = dir.path().join("long.toml");
    std::fs::write(&suite, long).unwrap();
    let out = inferbench(&["run", suite.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("context"), "{stderr}");

    // Generation scenarios need a language model; an mlp is refused.
    let mixed = r#"
[suite]
name = "mixed"
[[models]]
name = "m"
arch = "mlp"
input_size = 4
hidden = [4]
classes = 2
[[targets]]
device = "cpu"
[scenarios.decode]
new_tokens = [4]
"#;
    let suite = dir.path().join("mixed.toml");
    std::fs::write(&suite, mixed).unwrap();
    let out = inferbench(&["run", suite.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("decode"), "{stderr}");
}
