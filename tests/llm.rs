//! Language models (`arch = "llm"`) through the real binary, on the tiny seeded GGUF the tests
//! write (`llm::tiny`: two layers, hidden 64): the prefill, decode, generate and llm_server
//! scenarios with their records, requantized variants with perplexity and KL divergence, the
//! llama-bench table, the LLM server table, `check` on the LLM metrics, the report's LLM
//! charts, and bad GGUF files refused with exit 2 naming the file. The real SmolLM2 file is
//! driven by tests/smollm2.rs.

use std::path::Path;

use inferbench::data::npy::{self, NpyData};
use inferbench::llm::bench::{LlmBench, LlmTest};
use inferbench::llm::tiny::{self, TinyLlama};
use inferbench::llm::tokenizer::GgufTokenizer;
use inferbench::llm::tokens::random_tokens;
use inferbench::llm::LlmModel;
use inferbench::results;
use inferbench::schema::{CaseResult, RunResult, ScenarioRecord};

mod support;
use support::{assert_cut_by_budget, inferbench, text};

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

    // The LLM server table: one row per llm_server case, whole within 120 columns, and the
    // search's result under it.
    let header = stdout
        .lines()
        .find(|l| l.contains("TTFT p50 / p99 ms") && l.contains("TPOT p50 / p99 ms"))
        .unwrap_or_else(|| panic!("no LLM server table in\n{stdout}"));
    assert!(header.contains("req/s off → done") && header.contains("dropped"));
    assert!(header.chars().count() <= 120, "{header}");
    let found = stdout
        .lines()
        .filter(|l| l.starts_with("find_max_qps tiny-") && l.contains("req/s"))
        .count();
    assert_eq!(found, 3, "one search result per variant in\n{stdout}");

    // The report: every LLM chart drawn, written beside the page and shown in its LLM section.
    // `KEEP_REPORT=DIR` writes it to DIR instead, to look at.
    let report_dir = std::env::var_os("KEEP_REPORT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("report"));
    let out = inferbench(&[
        "report",
        output.to_str().unwrap(),
        "--out",
        report_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(report_dir.join("index.html")).unwrap();
    assert!(page.contains("<section id=\"llm\">"), "no LLM section");
    let start = page.find("<section id=\"llm\">").unwrap();
    let end = start + page[start..].find("</section>").unwrap();
    let llm_section = &page[start..end];
    assert!(llm_section.contains("outside the timed region"));
    for file in [
        "llm-tokens-prefill.png",
        "llm-tokens-decode.png",
        "llm-tokens-generate.png",
        "llm-itl.png",
        "llm-server-load.png",
        "llm-quality-ppl.png",
        "llm-quality-kld.png",
        "llm-memory.png",
    ] {
        let png = std::fs::read(report_dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{file}: {} bytes",
            png.len()
        );
        assert!(
            llm_section.contains(&format!("({file})")),
            "{file} not in the LLM section"
        );
    }
    let summary = std::fs::read_to_string(report_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("`llm-quality-ppl.png` (language models)"),
        "{summary}"
    );
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

/// A suite of one tiny model per architecture in `archs` (each `{arch}.gguf` in `dir`, its 2-D
/// tensors f32), each as written and requantized to q8_0, under prefill and decode.
fn arch_suite(dir: &Path, archs: &[&'static str]) -> std::path::PathBuf {
    let mut body = String::from("[suite]\nname = \"llm-arch\"\n");
    for &architecture in archs {
        TinyLlama {
            architecture,
            dtype: candle_core::quantized::GgmlDType::F32,
            ..TinyLlama::default()
        }
        .write(&dir.join(format!("{architecture}.gguf")))
        .unwrap();
        body.push_str(&format!(
            r#"
[[models]]
name = "{architecture}"
arch = "llm"
path = "{architecture}.gguf"

[[variants]]
name = "baseline"
model = "{architecture}"
source = "baseline"

[[variants]]
name = "q8"
model = "{architecture}"
source = "quantize"
dtype = "q8_0"
"#
        ));
    }
    body.push_str(
        r#"
[[targets]]
device = "cpu"
threads = [1]

[scenarios.prefill]
prompt_tokens = [8]

[scenarios.decode]
new_tokens = [4]
depth = [8]

[settings]
warmup_s = 0.02
max_warmup_s = 0.1
min_time_s = 0.05
max_time_s = 0.2
min_iterations = 5
max_noise = 0.5
"#,
    );
    let suite = dir.join("arch.toml");
    std::fs::write(&suite, body).unwrap();
    suite
}

/// qwen2, qwen3 and phi3 (candle's `quantized_qwen2`, `quantized_qwen3`, `quantized_phi3`)
/// run prefill and decode through the binary, as written and requantized to q8_0.
#[test]
fn qwen2_qwen3_and_phi3_prefill_and_decode_end_to_end() {
    let archs = ["qwen2", "qwen3", "phi3"];
    let dir = tempfile::tempdir().unwrap();
    let suite = arch_suite(dir.path(), &archs);
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
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {stderr}\nstdout: {}",
        text(&out.stdout)
    );
    let run = results::read_json(&output).unwrap();
    let mut expected = Vec::new();
    for arch in archs {
        for v in ["baseline", "q8"] {
            for part in ["prefill/pp8/b1", "decode/tg4@d8/b1"] {
                expected.push(format!("{arch}-{v}/cpu-t1/{part}"));
            }
        }
    }
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, expected);
    for arch in archs {
        for (v, dtype) in [("baseline", "f32"), ("q8", "q8_0")] {
            let pp = case(&run, &format!("{arch}-{v}/cpu-t1/prefill/pp8/b1"));
            let llm = pp.model.llm.as_ref().expect("the GGUF's description");
            assert_eq!(llm.architecture, arch);
            // Every 2-D tensor in the variant's type (norms and biases stay f32).
            assert!(
                llm.tensor_types.get(dtype).is_some_and(|&n| n >= 2 * 4 + 2),
                "{arch}-{v}: {:?}",
                llm.tensor_types
            );
            let Some(ScenarioRecord::Prefill(p)) = &pp.record else {
                panic!("{arch}-{v}: a prefill record: {:?}", pp.record)
            };
            let ttft = p.ttft_ms.as_ref().expect("TTFT");
            assert!(p.repetitions >= 5, "{arch}-{v}: {}", p.repetitions);
            assert_eq!(ttft.samples.len(), p.repetitions);
            assert!(ttft.samples.iter().all(|&ms| ms > 0.0));

            let tg = case(&run, &format!("{arch}-{v}/cpu-t1/decode/tg4@d8/b1"));
            let Some(ScenarioRecord::Decode(d)) = &tg.record else {
                panic!("{arch}-{v}: a decode record: {:?}", tg.record)
            };
            let itl = d.itl_ms.as_ref().expect("ITL");
            assert_eq!(itl.samples.len(), 4 * d.repetitions, "{arch}-{v}");
            assert_eq!(d.generated.len(), 4);
            assert!(d
                .generated
                .iter()
                .all(|&t| (t as usize) < tiny::vocab_size()));
            assert_eq!(d.kv_cache.as_ref().unwrap().context_tokens, 12);
        }
    }
}

/// A GGUF of an architecture candle has no loader for here, and a phi3 without the output
/// projection candle's phi3 reads, exit 2 before any case runs, naming the file and why.
#[test]
fn unsupported_architectures_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let suite = arch_suite(dir.path(), &["phi3"]);
    let body = std::fs::read_to_string(&suite).unwrap();
    let gemma = TinyLlama {
        architecture: "gemma3",
        ..TinyLlama::default()
    };
    let tied_phi3 = TinyLlama {
        architecture: "phi3",
        tied: true,
        ..TinyLlama::default()
    };
    let cases = [
        (
            "gemma",
            gemma,
            &["`gemma3`", "llama, qwen2, qwen3, phi3"][..],
        ),
        ("tied", tied_phi3, &["output.weight is missing", "phi3"][..]),
    ];
    for (name, model, needles) in cases {
        let gguf = format!("{name}.gguf");
        model.write(&dir.path().join(&gguf)).unwrap();
        let suite = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &suite,
            body.replace("\"phi3.gguf\"", &format!("\"{gguf}\"")),
        )
        .unwrap();
        let out = inferbench(&["run", suite.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        for needle in needles
            .iter()
            .copied()
            .chain([gguf.as_str(), "models[0].path"])
        {
            assert!(stderr.contains(needle), "{name}: no {needle:?} in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

/// A text the tiny model's byte-level tokenizer turns into well over 20 tokens.
const PROMPT_TEXT: &str = "In the beginning the earth was without form, and void; and darkness was upon the face of the deep.";

/// The suite of the prompt-file and file-variant tests: the tiny model with quality, its
/// baseline and a `file` variant (`mine.gguf`), prefill from a text and decode from token ids.
const PROMPT_SUITE: &str = r#"
[suite]
name = "llm-prompts"

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
name = "mine"
model = "tiny"
source = "file"
path = "mine.gguf"

[[targets]]
device = "cpu"
threads = [1]

[scenarios.prefill]
prompt_tokens = [8]
prompt_file = "prompt.txt"

[scenarios.decode]
new_tokens = [4]
depth = [8]
prompt_file = "prompt.npy"

[settings]
warmup_s = 0.02
max_warmup_s = 0.1
min_time_s = 0.05
max_time_s = 0.2
min_iterations = 5
max_noise = 0.5
"#;

/// The ids `prompt.npy` holds.
const PROMPT_IDS: [i64; 12] = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51];

/// A token-id file with its provenance sidecar.
fn write_token_file(path: &Path, ids: &[i64]) {
    npy::write(path, &[ids.len()], NpyData::I64(ids)).unwrap();
    let provenance =
        r#"{"text": "none", "tokenizer": "chosen by hand", "model": "tiny", "bos": false}"#;
    std::fs::write(path.with_extension("json"), provenance).unwrap();
}

/// The tiny model, its quality ids, `mine.gguf` (three layers, other seeds: "a user's own
/// GGUF"), the prompt text and ids, and the prompt suite, in `dir`.
fn write_prompt_inputs(dir: &Path) -> std::path::PathBuf {
    write_inputs(dir);
    TinyLlama {
        seed: 11,
        layers: 3,
        ..TinyLlama::default()
    }
    .write(&dir.join("mine.gguf"))
    .unwrap();
    std::fs::write(dir.join("prompt.txt"), PROMPT_TEXT).unwrap();
    write_token_file(&dir.join("prompt.npy"), &PROMPT_IDS);
    let suite = dir.join("prompts.toml");
    std::fs::write(&suite, PROMPT_SUITE).unwrap();
    suite
}

/// The greedy tokens the library's own bench loop generates for `test` on `gguf` from `ids`.
fn reference_tokens(gguf: &Path, test: LlmTest, ids: &[u32]) -> Vec<u32> {
    let mut model = LlmModel::load(gguf, &candle_core::Device::Cpu).unwrap();
    let mut bench = LlmBench::with_tokens(&mut model, test, ids).unwrap();
    bench.run().unwrap();
    bench.generated().to_vec()
}

/// `prompt_file` takes the prompt from a text (tokenized by the model's GGUF tokenizer) or
/// from token ids; a `file` variant runs the user's own GGUF (its own header, layers and KV
/// cache) and is scored against the baseline.
#[test]
fn prompt_files_and_file_variants_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_prompt_inputs(dir.path());
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
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let run = results::read_json(&output).unwrap();
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "tiny-baseline/cpu-t1/prefill/pp8/b1",
            "tiny-baseline/cpu-t1/decode/tg4@d8/b1",
            "tiny-mine/cpu-t1/prefill/pp8/b1",
            "tiny-mine/cpu-t1/decode/tg4@d8/b1",
        ]
    );
    let tokenizer = GgufTokenizer::load(&dir.path().join("tiny.gguf")).unwrap();
    let text_ids = tokenizer.encode(PROMPT_TEXT).unwrap();
    assert!(text_ids.len() > 20);
    let file_ids: Vec<u32> = PROMPT_IDS.iter().map(|&v| v as u32).collect();
    let prefill = LlmTest::Prefill { prompt: 8 };
    let decode = LlmTest::Decode {
        depth: 8,
        new_tokens: 4,
    };
    for (variant, gguf, layers) in [("baseline", "tiny.gguf", 2), ("mine", "mine.gguf", 3)] {
        let gguf = dir.path().join(gguf);
        let pp = case(&run, &format!("tiny-{variant}/cpu-t1/prefill/pp8/b1"));
        let Some(ScenarioRecord::Prefill(p)) = &pp.record else {
            panic!("a prefill record: {:?}", pp.record)
        };
        assert!(
            p.prompt.contains("prompt.txt") && p.prompt.contains("the first 9 of the"),
            "{}",
            p.prompt
        );
        assert_eq!(
            p.generated,
            reference_tokens(&gguf, prefill, &text_ids),
            "{variant}"
        );

        let tg = case(&run, &format!("tiny-{variant}/cpu-t1/decode/tg4@d8/b1"));
        let Some(ScenarioRecord::Decode(d)) = &tg.record else {
            panic!("a decode record: {:?}", tg.record)
        };
        assert!(
            d.prompt.contains("prompt.npy") && d.prompt.contains("chosen by hand"),
            "{}",
            d.prompt
        );
        let want = reference_tokens(&gguf, decode, &file_ids);
        assert_eq!(
            d.generated, want,
            "{variant}: the file's ids were the context"
        );
        let seeded = random_tokens(tiny::vocab_size(), 9, 1);
        assert_ne!(
            reference_tokens(&gguf, decode, &seeded),
            want,
            "a different context"
        );

        // The variant's own file was loaded: its layers and its KV cache.
        let llm = pp.model.llm.as_ref().expect("the GGUF's description");
        assert_eq!(llm.layers, layers, "{variant}");
        let per_position = 2 * layers * tiny::KV_HEADS * (tiny::EMBED / tiny::HEADS) * 4;
        assert_eq!(
            d.kv_cache.as_ref().unwrap().computed_bytes,
            (12 * per_position) as u64
        );
    }
    // The file variant is scored against the baseline: another model, a real divergence.
    let mine = case(&run, "tiny-mine/cpu-t1/prefill/pp8/b1");
    let kld = mine
        .llm_quality
        .as_ref()
        .and_then(|q| q.kld.as_ref())
        .expect("KLD of the file variant");
    assert!(kld.mean > 0.01, "{kld:?}");
}

/// A prompt file that is missing, empty, too short or holds ids outside the vocabulary, and
/// a file variant that is not a GGUF, exit 2 before any case runs, naming the file and the
/// field.
#[test]
fn bad_prompt_files_and_file_variants_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_prompt_inputs(dir.path());
    let d = dir.path();
    std::fs::write(d.join("empty.txt"), "").unwrap();
    std::fs::write(d.join("short.txt"), "In the").unwrap();
    write_token_file(&d.join("none.npy"), &[]);
    write_token_file(&d.join("foreign.npy"), &[1, 2, 3, 4, 5, 6, 7, 8, 9000, 10]);
    std::fs::write(d.join("not.gguf"), "not a model").unwrap();
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        (
            "\"prompt.txt\"",
            "\"missing.txt\"",
            "prefill",
            &["missing.txt"],
        ),
        (
            "\"prompt.txt\"",
            "\"empty.txt\"",
            "prefill",
            &["empty.txt", "holds no tokens"],
        ),
        (
            "\"prompt.txt\"",
            "\"short.txt\"",
            "prefill",
            &["short.txt", "9 are needed"],
        ),
        (
            "\"prompt.npy\"",
            "\"none.npy\"",
            "decode",
            &["none.npy", "holds no tokens"],
        ),
        (
            "\"prompt.npy\"",
            "\"foreign.npy\"",
            "decode",
            &[
                "foreign.npy",
                "holds id 9000 at index 8",
                "vocabulary of 267",
            ],
        ),
        (
            "\"mine.gguf\"",
            "\"not.gguf\"",
            "variants[1].path",
            &["not.gguf", "not a GGUF file", "one an `llm` runs"],
        ),
    ];
    for (from, to, field, says) in cases {
        let suite = d.join("bad.toml");
        std::fs::write(&suite, PROMPT_SUITE.replace(from, to)).unwrap();
        let out = inferbench(&["run", suite.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {stderr}");
        let field = if field.contains('.') {
            field.to_string()
        } else {
            format!("scenarios.{field}.prompt_file")
        };
        assert!(stderr.contains(&field), "{to}: no {field} in {stderr}");
        for needle in says {
            assert!(stderr.contains(needle), "{to}: no {needle:?} in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `profile` on a decode case splits its repetitions into the components candle traces
/// (attention and MLP matmuls, RoPE, attention, norms, logits), from candle's own forward.
#[test]
fn profile_splits_a_decode_into_components() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let suite = dir.path().join("suite.toml");
    let output = dir.path().join("profile.json");
    let cache = dir.path().join("cache");
    let id = "tiny-baseline/cpu-t1/decode/tg4@d8/b1";
    let out = inferbench(&[
        "profile",
        suite.to_str().unwrap(),
        "--case",
        id,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}\nstdout: {stdout}",
        text(&out.stderr)
    );
    for needle in [
        "matmuls: attention q, k, v, o",
        "RoPE",
        "attention: scores, softmax, values, KV cache",
        "matmuls: MLP gate, up, down",
        "RMS norms",
        "logits: output matmul",
        "sum of layer means",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
    let run = results::read_json(&output).unwrap();
    let profile = case(&run, id).profile.as_ref().expect("a profile");
    assert!(profile.iterations >= 5, "{}", profile.iterations);
    assert!(profile
        .layers
        .iter()
        .all(|l| l.samples_ms.len() == profile.iterations));
    let share: f64 = profile.layers.iter().map(|l| l.share).sum();
    assert!((share - 1.0).abs() < 1e-9, "{share}");
    // The components are part of each repetition's four decode steps (the unit test of
    // `llm::profile` holds each repetition's sum below its own time). How far the spans'
    // cost lifts the sum above the unprofiled repetition is a wall-clock ratio, which this
    // test, run beside others, does not bound.
    assert!(profile.layer_sum_mean_ms > 0.0 && profile.layer_sum_mean_ms.is_finite());
    assert!(profile.forward_mean_ms > 0.0);
    // Held against the case's own repetitions only: the generic second pass would time the
    // model's forward, a whole repetition with the untimed context prefill.
    assert_eq!(profile.forward_after_mean_ms, None);
}

/// Under a time budget (`--quick`, capped here by the suite's `budget_s` at 1 µs, shorter than
/// any repetition on any machine) every LLM loop stops where it runs out: prefill, decode and
/// generate after one repetition, the server's schedule cut and its search stopped after one
/// probe. Each case is `partial` with stop reason `budget`, never `ok`.
#[test]
fn a_time_budget_cuts_every_llm_case_short() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let suite = dir.path().join("suite.toml");
    let body = SUITE.replace("max_noise = 0.5", "max_noise = 0.5\nbudget_s = 0.000001");
    std::fs::write(&suite, body).unwrap();
    let output = dir.path().join("run.json");
    let out = inferbench(&[
        "run",
        suite.to_str().unwrap(),
        "--quick",
        "--filter",
        "tiny-baseline/",
        "--cache-dir",
        dir.path().join("cache").to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let run = results::read_json(&output).unwrap();
    assert_eq!(run.settings.budget_s, Some(0.000001));
    let parts: Vec<&str> = run
        .cases
        .iter()
        .map(|c| c.id.split("/cpu-t1/").nth(1).unwrap())
        .collect();
    assert_eq!(
        parts,
        [
            "prefill/pp8/b1",
            "decode/tg4/b1",
            "generate/pp8+tg4/b1",
            "llm_server/pp8+tg4/max/b1",
        ],
        "--quick keeps the smallest of each list"
    );
    for c in &run.cases {
        assert_cut_by_budget(c, "0.000001");
    }
    for c in &run.cases[..3] {
        let n = c.latency_ms.as_ref().unwrap().samples.len();
        assert_eq!(n, 1, "{}: one repetition, short of min_iterations", c.id);
    }
    let Some(ScenarioRecord::LlmServer(s)) = &run.cases[3].record else {
        panic!("an llm_server record: {:?}", run.cases[3].record)
    };
    let search = s.search.as_ref().expect("the search");
    assert_eq!(search.probes.len(), 1, "{search:?}");
    assert_eq!(search.end, inferbench::schema::SearchEnd::Budget);
}
