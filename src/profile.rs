//! Per-layer profiles (issue #7, part 3): what the worker measured layer by layer, the
//! statistics a run file keeps, the check of the layers' sum against the unprofiled forward
//! pass, and the Chrome trace (Trace Event Format, opens in Perfetto and chrome://tracing).
//!
//! Pure: plain serde data, no candle, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::schema::{shape_text, LayerProfile, LayerSpec, LayerTiming, StopReason};
use crate::stats;

/// What the worker sends for a profiled case, beside the unprofiled measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawProfile {
    /// The steps, in forward order (per-sample shapes).
    pub layers: Vec<LayerSpec>,
    /// Bytes of each step's weights as stored.
    pub weight_bytes: Vec<usize>,
    /// Bytes each step moves for the case's batch (docs/profile-and-roofline.md, "Bytes: the
    /// traffic model").
    pub traffic_bytes: Vec<u64>,
    /// Per step, one duration per profiled iteration, ms.
    pub samples_ms: Vec<Vec<f64>>,
    pub warmup_iterations: u64,
    pub stop_reason: StopReason,
    /// Relative half-width of the profiled iterations' median CI (the stopping rule's figure).
    pub noise: f64,
    /// The trace pass: per recorded iteration, per step, `[start, duration]` in ns from the
    /// first recorded step's start.
    pub trace_ns: Vec<Vec<[u64; 2]>>,
    /// The unprofiled forward pass sampled again after the profiled pass (same stopping
    /// rule), so the comparison brackets the profiled pass in time.
    #[serde(default)]
    pub forward_after_ms: Vec<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn stdev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Statistics of a raw profile, held against the unprofiled forward samples of the same case.
pub fn summarize(raw: RawProfile, batch: usize, forward_samples_ms: &[f64]) -> LayerProfile {
    let means: Vec<f64> = raw.samples_ms.iter().map(|s| mean(s)).collect();
    let sum: f64 = means.iter().sum();
    let iterations = raw.samples_ms.first().map(Vec::len).unwrap_or(0);
    let layers = raw
        .layers
        .iter()
        .zip(raw.samples_ms)
        .enumerate()
        .map(|(i, (spec, samples))| {
            let mut sorted = samples.clone();
            sorted.sort_by(f64::total_cmp);
            let m = means[i];
            let flops = spec.flops * batch as u64;
            let with_batch = |shape: &[usize]| {
                let mut s = vec![batch];
                s.extend_from_slice(shape);
                s
            };
            LayerTiming {
                name: spec.name.clone(),
                kind: spec.kind,
                op: spec.op.clone(),
                input_shape: with_batch(&spec.input),
                output_shape: with_batch(&spec.output),
                flops,
                bytes: raw.traffic_bytes.get(i).copied().unwrap_or(0),
                weight_bytes: raw.weight_bytes.get(i).copied().unwrap_or(0),
                mean_ms: m,
                p50_ms: if sorted.is_empty() {
                    0.0
                } else {
                    stats::percentile(&sorted, 0.5)
                },
                stdev_ms: stdev(&samples),
                min_ms: sorted.first().copied().unwrap_or(0.0),
                share: if sum > 0.0 { m / sum } else { 0.0 },
                gflops: if m > 0.0 {
                    flops as f64 / (m * 1e-3) / 1e9
                } else {
                    0.0
                },
                samples_ms: samples,
            }
        })
        .collect();
    let before = mean(forward_samples_ms);
    let after = (!raw.forward_after_ms.is_empty()).then(|| mean(&raw.forward_after_ms));
    let forward = match after {
        Some(a) => (before + a) / 2.0,
        None => before,
    };
    LayerProfile {
        forward_before_mean_ms: before,
        forward_after_mean_ms: after,
        batch_size: batch,
        layers,
        iterations,
        warmup_iterations: raw.warmup_iterations,
        stop_reason: raw.stop_reason,
        noise: raw.noise,
        layer_sum_mean_ms: sum,
        forward_mean_ms: forward,
        difference_ms: sum - forward,
        difference_share: if forward > 0.0 {
            (sum - forward) / forward
        } else {
            0.0
        },
        trace_ns: raw.trace_ns,
    }
}

/// The trace pass as a Chrome trace (Trace Event Format, JSON object form): one complete
/// event (`ph: "X"`) per step per recorded iteration, named after the step, inside one
/// `forward` event per iteration on the same thread; `ts` and `dur` in microseconds from the
/// first recorded step; `args` carry the shapes, FLOPs and bytes. `case` names the process.
pub fn chrome_trace(case: &str, profile: &LayerProfile) -> Value {
    let pid = 1;
    let tid = 1;
    let us = |ns: u64| ns as f64 / 1e3;
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": pid, "tid": tid,
               "args": {"name": format!("inferbench profile: {case}")}}),
        json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
               "args": {"name": format!("forward, batch {}", profile.batch_size)}}),
    ];
    for (iteration, spans) in profile.trace_ns.iter().enumerate() {
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            continue;
        };
        events.push(json!({
            "name": "forward", "cat": "iteration", "ph": "X",
            "ts": us(first[0]), "dur": us(last[0] + last[1] - first[0]),
            "pid": pid, "tid": tid,
            "args": {"iteration": iteration},
        }));
        for (span, layer) in spans.iter().zip(&profile.layers) {
            events.push(json!({
                "name": layer.name, "cat": layer.op_text(), "ph": "X",
                "ts": us(span[0]), "dur": us(span[1]),
                "pid": pid, "tid": tid,
                "args": {
                    "iteration": iteration,
                    "input_shape": shape_text(&layer.input_shape),
                    "output_shape": shape_text(&layer.output_shape),
                    "flops": layer.flops,
                    "bytes": layer.bytes,
                    "weight_bytes": layer.weight_bytes,
                },
            }));
        }
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "case": case,
            "note": "a separate pass after the profiled sampling: each step ends with a device synchronisation and a clock read",
            "layer_sum_mean_ms": profile.layer_sum_mean_ms,
            "forward_mean_ms": profile.forward_mean_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LayerKind;

    fn raw() -> RawProfile {
        let spec = |name: &str, kind, input: Vec<usize>, output: Vec<usize>, flops| LayerSpec {
            name: name.into(),
            kind,
            op: None,
            input,
            output,
            flops,
            params: 0,
        };
        RawProfile {
            layers: vec![
                spec(
                    "conv1",
                    LayerKind::Conv,
                    vec![1, 4, 4],
                    vec![2, 2, 2],
                    1_000,
                ),
                spec("pool1", LayerKind::Pool, vec![2, 2, 2], vec![2, 1, 1], 0),
                spec("fc1", LayerKind::Dense, vec![2], vec![3], 12),
            ],
            weight_bytes: vec![80, 0, 36],
            traffic_bytes: vec![400, 200, 100],
            samples_ms: vec![
                vec![3.0, 1.0, 2.0],
                vec![1.0, 1.0, 1.0],
                vec![0.5, 0.5, 2.0],
            ],
            warmup_iterations: 7,
            stop_reason: StopReason::Converged,
            noise: 0.01,
            trace_ns: vec![
                vec![[0, 2_000], [2_500, 1_000], [3_600, 400]],
                vec![[10_000, 2_000], [12_000, 1_000], [13_000, 500]],
            ],
            forward_after_ms: Vec::new(),
        }
    }

    #[test]
    fn layer_statistics_shares_and_the_difference_to_the_forward_pass() {
        let p = summarize(raw(), 2, &[3.5, 4.5]);
        assert_eq!(p.iterations, 3);
        let means: Vec<f64> = p.layers.iter().map(|l| l.mean_ms).collect();
        assert_eq!(means, vec![2.0, 1.0, 1.0]);
        assert_eq!(p.layer_sum_mean_ms, 4.0);
        assert_eq!(p.forward_mean_ms, 4.0);
        assert_eq!(p.difference_ms, 0.0);
        assert_eq!(p.layers[0].share, 0.5);
        assert_eq!(p.layers[0].p50_ms, 2.0);
        assert_eq!(p.layers[0].min_ms, 1.0);
        assert_eq!(p.layers[0].stdev_ms, 1.0);
        // Batch 2: 2,000 FLOPs in 2 ms = 1e-3 GFLOP/s; shapes gain the batch.
        assert_eq!(p.layers[0].flops, 2_000);
        assert!((p.layers[0].gflops - 1e-3).abs() < 1e-15);
        assert_eq!(p.layers[0].output_shape, vec![2, 2, 2, 2]);
        assert_eq!(p.layers[1].gflops, 0.0);
        let slower = summarize(raw(), 2, &[3.0, 3.0, 4.0, 6.0]);
        assert_eq!(slower.difference_ms, 0.0);
        let faster = summarize(raw(), 2, &[3.2]);
        assert!((faster.difference_ms - 0.8).abs() < 1e-12);
        assert!((faster.difference_share - 0.25).abs() < 1e-12);
        // Before and after the profiled pass weigh half each, whatever their sample counts.
        let mut bracketed = raw();
        bracketed.forward_after_ms = vec![5.0, 5.0, 5.0, 5.0];
        let b = summarize(bracketed, 2, &[3.0, 3.0]);
        assert_eq!(b.forward_before_mean_ms, 3.0);
        assert_eq!(b.forward_after_mean_ms, Some(5.0));
        assert_eq!(b.forward_mean_ms, 4.0);
        assert_eq!(b.difference_ms, 0.0);
    }

    #[test]
    fn chrome_trace_has_one_complete_event_per_layer_per_iteration() {
        let p = summarize(raw(), 2, &[4.0]);
        let trace = chrome_trace("m-baseline/cpu-t1/single_stream/b1", &p);
        let text = serde_json::to_string(&trace).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        let events = back["traceEvents"].as_array().unwrap();
        let complete: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        // 2 iterations x (1 forward + 3 layers).
        assert_eq!(complete.len(), 8);
        for name in ["conv1", "pool1", "fc1"] {
            let of: Vec<&&Value> = complete.iter().filter(|e| e["name"] == name).collect();
            assert_eq!(of.len(), 2, "{name}");
            for e in of {
                assert!(e["ts"].is_number() && e["dur"].is_number());
                assert!(e["pid"].is_number() && e["tid"].is_number());
                assert!(e["args"]["output_shape"].is_string());
            }
        }
        let pool = complete
            .iter()
            .find(|e| e["name"] == "pool1" && e["args"]["iteration"] == 1)
            .unwrap();
        assert_eq!(pool["ts"].as_f64(), Some(12.0));
        assert_eq!(pool["dur"].as_f64(), Some(1.0));
        let forward = complete
            .iter()
            .find(|e| e["name"] == "forward" && e["args"]["iteration"] == 0)
            .unwrap();
        assert_eq!(forward["dur"].as_f64(), Some(4.0));
        assert_eq!(complete[1]["args"]["flops"].as_u64(), Some(2_000));
    }
}
