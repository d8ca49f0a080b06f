//! Drives the real binary for issue #7's parts 3 and 4: `profile` (per-layer table, run file
//! with the profile, Chrome trace) and `env --peaks` (measured peaks, their cache, and the
//! roofline figures `run` derives from them). Tiny sizes throughout.

use std::path::{Path, PathBuf};

use inferbench::results;
use inferbench::schema::RunResult;
use serde_json::Value;

mod support;
use support::{inferbench, text};

/// A 12x12 CNN (conv4-pool-conv8-pool-fc16-fc10) on 1 and 2 threads, short timings.
const SUITE: &str = r#"
[suite]
name = "tiny_profile"

[[models]]
name = "cnn"
arch = "cnn"
input = [12, 12, 1]
conv_channels = [4, 8]
dense = [16]
classes = 10

[[targets]]
device = "cpu"
threads = [1, 2]

[scenarios.offline]
batch_sizes = [2]

[settings]
warmup_s = 0.02
max_warmup_s = 0.1
min_time_s = 0.05
max_time_s = 0.3
max_noise = 0.05
case_timeout_s = 30
idle_power_s = 0
"#;

fn suite(dir: &Path) -> PathBuf {
    let path = dir.join("suite.toml");
    std::fs::write(&path, SUITE).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn profile_prints_layers_writes_the_run_and_a_chrome_trace() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path());
    let (trace, run) = (dir.path().join("trace.json"), dir.path().join("p.json"));
    let cache = dir.path().join("cache");
    let out = inferbench(&[
        "profile",
        s(&suite),
        "--case",
        "cnn-baseline/cpu-t1/offline/b2",
        "--trace",
        s(&trace),
        "--trace-iterations",
        "3",
        "--output",
        s(&run),
        "--cache-dir",
        s(&cache),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for layer in ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2"] {
        assert!(stdout.contains(layer), "{layer} missing from\n{stdout}");
    }
    assert!(stdout.contains("sum of layer means"), "{stdout}");
    assert!(stdout.contains("vs unprofiled forward mean"), "{stdout}");
    // No peaks in a fresh cache: said, not silently skipped.
    assert!(stderr.contains("no measured peaks"), "{stderr}");

    // The trace: valid JSON, a complete event per layer per recorded iteration, in
    // microseconds, each inside its iteration's `forward` event.
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().expect("traceEvents");
    let complete: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(complete.len(), 3 * (6 + 1));
    for e in &complete {
        for key in ["ts", "dur", "pid", "tid"] {
            assert!(e[key].is_number(), "{key} in {e}");
        }
        assert!(e["dur"].as_f64().unwrap() >= 0.0);
    }
    for it in 0..3 {
        let forward = complete
            .iter()
            .find(|e| e["name"] == "forward" && e["args"]["iteration"] == it)
            .expect("one forward event per iteration");
        let (f0, f1) = (
            forward["ts"].as_f64().unwrap(),
            forward["ts"].as_f64().unwrap() + forward["dur"].as_f64().unwrap(),
        );
        let layers: Vec<&&Value> = complete
            .iter()
            .filter(|e| e["name"] != "forward" && e["args"]["iteration"] == it)
            .collect();
        let names: Vec<&str> = layers.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2"]);
        for e in layers {
            let (a, b) = (
                e["ts"].as_f64().unwrap(),
                e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap(),
            );
            assert!(a >= f0 - 1e-6 && b <= f1 + 1e-6, "{e} outside {forward}");
        }
    }
    let conv1 = complete.iter().find(|e| e["name"] == "conv1").unwrap();
    // 2 samples x 2*9*1*4*10*10 FLOPs.
    assert_eq!(conv1["args"]["flops"].as_u64(), Some(14_400));
    assert_eq!(conv1["args"]["output_shape"], "[2, 4, 10, 10]");

    // The run file carries the profile, and its check of the sum.
    let r: RunResult = results::read_json(&run).unwrap();
    assert_eq!(r.cases.len(), 1);
    let c = &r.cases[0];
    let p = c.profile.as_ref().expect("profile in the run file");
    assert_eq!(p.layers.len(), 6);
    assert_eq!(p.trace_ns.len(), 3);
    let flops: Vec<u64> = p.layers.iter().map(|l| l.flops).collect();
    // conv1 2*9*1*4*10*10, conv2 2*9*4*8*3*3 (5 -> 3), fc1 2*8*16, fc2 2*16*10; batch 2.
    assert_eq!(flops, vec![14_400, 0, 10_368, 0, 512, 640]);
    assert_eq!(
        flops.iter().sum::<u64>(),
        2 * c.model.flops_per_sample,
        "the layers' FLOPs add up to the model's"
    );
    assert!(p.layers.iter().all(|l| l.mean_ms > 0.0
        && l.samples_ms.len() == p.iterations
        && l.samples_ms.iter().all(|x| *x > 0.0)));
    let sum: f64 = p.layers.iter().map(|l| l.mean_ms).sum();
    assert!((sum - p.layer_sum_mean_ms).abs() < 1e-9);
    let forward = c.latency_ms.as_ref().unwrap();
    // The unprofiled forward pass brackets the profiled one: the case's own samples before,
    // a second sampling after, each weighing half.
    assert!((p.forward_before_mean_ms - forward.summary.mean).abs() < 1e-9);
    let after = p
        .forward_after_mean_ms
        .expect("sampled again after the profiled pass");
    assert!(after > 0.0);
    assert!((p.forward_mean_ms - (p.forward_before_mean_ms + after) / 2.0).abs() < 1e-9);
    assert!((p.difference_ms - (sum - p.forward_mean_ms)).abs() < 1e-9);
    assert!((p.layers.iter().map(|l| l.share).sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(
        c.bytes_per_batch,
        Some(p.layers.iter().map(|l| l.bytes).sum::<u64>())
    );
    assert!(c.roofline.is_none() && r.peaks.is_none());
}

#[test]
fn profile_refuses_an_unknown_case_naming_the_nearest_ids() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path());
    let out = inferbench(&[
        "profile",
        s(&suite),
        "--case",
        "cnn-baseline/cpu-t1/offline/b3",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--case"), "{stderr}");
    assert!(
        stderr.contains("`cnn-baseline/cpu-t1/offline/b2`"),
        "{stderr}"
    );
    assert!(stderr.contains("inferbench list"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn peaks_are_measured_cached_and_place_the_cases_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = inferbench(&[
        "env",
        "--peaks",
        "--threads",
        "1",
        "--copy-mb",
        "1",
        "--matmul-n",
        "48",
        "--repeats",
        "2",
        "--cache-dir",
        s(&cache),
        "--json",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let peaks: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let at = &peaks["by_threads"][0];
    assert_eq!(at["threads"], 1);
    assert_eq!(at["matmul_n"], 48);
    assert_eq!(at["copy_bytes"], 1 << 20);
    assert_eq!(at["bandwidth_runs_gbs"].as_array().unwrap().len(), 2);
    for key in ["bandwidth_gbs", "matmul_gflops"] {
        assert!(at[key].as_f64().unwrap() > 0.0, "{key}");
    }
    let best = at["matmul_runs_gflops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(at["matmul_gflops"].as_f64(), Some(best));
    let file = cache
        .join("peaks")
        .join(format!("{}.json", peaks["fingerprint"].as_str().unwrap()));
    assert!(file.exists(), "{} missing", file.display());

    // The table form lists the cached thread count.
    let out = inferbench(&[
        "env",
        "--peaks",
        "--threads",
        "1",
        "--copy-mb",
        "1",
        "--matmul-n",
        "32",
        "--repeats",
        "1",
        "--cache-dir",
        s(&cache),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("f32 matmul GFLOP/s"));

    // A run finds them: 1-thread cases are placed, the 2-thread ones are not (and it says so).
    let suite = suite(dir.path());
    let run_file = dir.path().join("run.json");
    let out = inferbench(&[
        "run",
        s(&suite),
        "--output",
        s(&run_file),
        "--cache-dir",
        s(&cache),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no peaks for 2 thread(s)"), "{stderr}");
    let r: RunResult = results::read_json(&run_file).unwrap();
    let p = r.peaks.as_ref().expect("peaks copied into the run");
    assert_eq!(p.by_threads.len(), 1);
    for c in &r.cases {
        let bytes = c.bytes_per_batch.expect("traffic of every measured case");
        match (c.threads, &c.roofline) {
            (1, Some(f)) => {
                let rate = c.throughput_per_s.unwrap();
                let flops = c.model.flops_per_sample as f64;
                assert!((f.achieved_gflops - flops * rate / 1e9).abs() < 1e-9);
                assert!((f.bytes_per_inference - bytes as f64 / 2.0).abs() < 1e-9);
                let roof = f.peak_gflops.min(f.arithmetic_intensity * f.peak_gbs);
                assert!((f.roof_gflops - roof).abs() < 1e-9);
                assert!((f.efficiency - f.achieved_gflops / roof).abs() < 1e-9);
            }
            (2, None) => {}
            (t, roof) => panic!("{} threads: {roof:?}", t),
        }
    }
    // The report draws the roofline.
    let out = inferbench(&[
        "report",
        s(&run_file),
        "--out",
        s(&dir.path().join("report")),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(dir.path().join("report/roofline.png").exists());
}

#[test]
fn bad_peaks_flags_exit_2() {
    for args in [
        &["env", "--peaks", "--threads", "0"][..],
        &["env", "--peaks", "--copy-mb", "0"],
        &["env", "--threads", "2"],
        &["env", "--peaks", "--suite", "no/such/suite.toml"],
    ] {
        let out = inferbench(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
