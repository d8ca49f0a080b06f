//! The run's CSV: one flat row per case, no raw samples.

use serde::Serialize;

use crate::schema::{CaseResult, RunResult};

/// One CSV row per case: flat columns, no raw samples.
#[derive(Debug, Serialize)]
struct CsvRow<'a> {
    id: &'a str,
    model: &'a str,
    variant: &'a str,
    target: &'a str,
    device: &'a str,
    threads: usize,
    scenario: &'a str,
    batch_size: usize,
    status: &'a str,
    error: Option<&'a str>,
    count: Option<usize>,
    mean_ms: Option<f64>,
    stdev_ms: Option<f64>,
    min_ms: Option<f64>,
    p50_ms: Option<f64>,
    p50_ci_low_ms: Option<f64>,
    p50_ci_high_ms: Option<f64>,
    p90_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    p99_ci_low_ms: Option<f64>,
    p99_ci_high_ms: Option<f64>,
    p999_ms: Option<f64>,
    max_ms: Option<f64>,
    outliers_mild: Option<usize>,
    outliers_severe: Option<usize>,
    throughput_per_s: Option<f64>,
    noise: Option<f64>,
    params: usize,
    weight_bytes: usize,
    flops_per_sample: u64,
    rss_before_load_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    peak_heap_bytes: Option<u64>,
    /// CUDA cases: NVML's device memory of the worker process, after the heap pass.
    gpu_process_used_bytes: Option<u64>,
    /// CUDA cases: the model's device memory as candle's CUDA context saw it (used after the
    /// model was built minus used before).
    gpu_model_bytes: Option<u64>,
    energy_method: Option<&'a str>,
    /// "yes" when the energy figures are an estimate, so a spreadsheet cannot miss it.
    energy_estimated: Option<&'a str>,
    energy_joules: Option<f64>,
    joules_per_inference: Option<f64>,
    inferences_per_joule: Option<f64>,
    avg_watts: Option<f64>,
    load_ms: Option<f64>,
    first_inference_ms: Option<f64>,
    warmup_ms: Option<f64>,
    warmup_end: Option<&'a str>,
    timed: String,
    preprocess_p50_ms: Option<f64>,
    forward_p50_ms: Option<f64>,
    postprocess_p50_ms: Option<f64>,
    params_nonzero: Option<usize>,
    artifact_bytes: Option<u64>,
    artifact_gzip_bytes: Option<u64>,
    compression_rate: Option<f64>,
    dtype: Option<&'a str>,
    float_layers: Option<usize>,
    accuracy: Option<f64>,
    precision_macro: Option<f64>,
    recall_macro: Option<f64>,
    f1_macro: Option<f64>,
    f1_weighted: Option<f64>,
    top1_agreement: Option<f64>,
    mean_cosine: Option<f64>,
    max_abs_diff: Option<f64>,
    /// Sentence encoders: cosine of each sentence's embedding to the baseline's, mean and
    /// worst, and the correlations of pair similarities with the shipped labels.
    embedding_mean_cosine: Option<f64>,
    embedding_min_cosine: Option<f64>,
    embedding_spearman: Option<f64>,
    embedding_pearson: Option<f64>,
    bytes_per_batch: Option<u64>,
    arithmetic_intensity: Option<f64>,
    achieved_gflops: Option<f64>,
    achieved_gbs: Option<f64>,
    roofline_gflops: Option<f64>,
    roofline_efficiency: Option<f64>,
    server_target_qps: Option<f64>,
    server_offered_qps: Option<f64>,
    server_achieved_qps: Option<f64>,
    server_served: Option<usize>,
    server_dropped: Option<usize>,
    server_unserved: Option<usize>,
    server_late: Option<usize>,
    server_saturated: Option<&'a str>,
    server_max_batch: Option<usize>,
    server_mean_batch: Option<f64>,
    max_qps: Option<f64>,
    max_qps_failing: Option<f64>,
    max_qps_p99_bound_ms: Option<f64>,
    search_probes: Option<usize>,
    samples_per_query: Option<usize>,
}

impl<'a> CsvRow<'a> {
    fn of(c: &'a CaseResult) -> Self {
        let s = c.latency_ms.as_ref().map(|l| &l.summary);
        let q = c.quality.as_ref();
        let fid = q.and_then(|q| q.fidelity.as_ref());
        let roof = c.roofline.as_ref();
        let server = c.server();
        let search = server.and_then(|v| v.search.as_ref());
        let gpu = c.memory.as_ref().and_then(|m| m.gpu.as_ref());
        let emb = c.embedding.as_ref();
        CsvRow {
            id: &c.id,
            model: &c.model_name,
            variant: &c.variant,
            target: &c.target,
            device: &c.device,
            threads: c.threads,
            scenario: c.scenario.as_str(),
            batch_size: c.batch_size,
            status: c.status.as_str(),
            error: c.error.as_deref(),
            count: s.map(|s| s.count),
            mean_ms: s.map(|s| s.mean),
            stdev_ms: s.map(|s| s.stdev),
            min_ms: s.map(|s| s.min),
            p50_ms: s.map(|s| s.p50),
            p50_ci_low_ms: s.map(|s| s.p50_ci[0]),
            p50_ci_high_ms: s.map(|s| s.p50_ci[1]),
            p90_ms: s.map(|s| s.p90),
            p95_ms: s.map(|s| s.p95),
            p99_ms: s.map(|s| s.p99),
            p99_ci_low_ms: s.map(|s| s.p99_ci[0]),
            p99_ci_high_ms: s.map(|s| s.p99_ci[1]),
            p999_ms: s.map(|s| s.p999),
            max_ms: s.map(|s| s.max),
            outliers_mild: s.map(|s| s.outliers_mild),
            outliers_severe: s.map(|s| s.outliers_severe),
            throughput_per_s: c.throughput_per_s,
            noise: c.noise,
            params: c.model.params,
            weight_bytes: c.model.weight_bytes,
            flops_per_sample: c.model.flops_per_sample,
            rss_before_load_bytes: c.memory.as_ref().map(|m| m.rss_before_load_bytes),
            peak_rss_bytes: c.memory.as_ref().map(|m| m.peak_rss_bytes),
            peak_heap_bytes: c.memory.as_ref().and_then(|m| m.peak_heap_bytes),
            gpu_process_used_bytes: gpu.and_then(|g| g.process_used_bytes),
            gpu_model_bytes: gpu.and_then(|g| {
                Some(
                    g.context_used_after_load_bytes?
                        .saturating_sub(g.context_used_before_load_bytes?),
                )
            }),
            energy_method: c.energy.as_ref().map(|e| e.method.as_str()),
            energy_estimated: c.energy.as_ref().map(|e| {
                if e.method.is_estimate() {
                    "yes"
                } else {
                    "no"
                }
            }),
            energy_joules: c.energy.as_ref().map(|e| e.joules),
            joules_per_inference: c.energy.as_ref().map(|e| e.joules_per_inference),
            inferences_per_joule: c.energy.as_ref().map(|e| e.inferences_per_joule),
            avg_watts: c.energy.as_ref().map(|e| e.avg_watts),
            load_ms: c.cold_start.as_ref().map(|k| k.load_ms),
            first_inference_ms: c.cold_start.as_ref().map(|k| k.first_inference_ms),
            warmup_ms: c.cold_start.as_ref().map(|k| k.warmup_ms),
            warmup_end: c.cold_start.as_ref().map(|k| match k.warmup_end {
                crate::schema::WarmupEnd::Stable => "stable",
                crate::schema::WarmupEnd::MaxTime => "max_time",
            }),
            timed: c.timed.join("+"),
            preprocess_p50_ms: stage_p50(c, "preprocess"),
            forward_p50_ms: stage_p50(c, "forward"),
            postprocess_p50_ms: stage_p50(c, "postprocess"),
            params_nonzero: c.model.params_nonzero,
            artifact_bytes: c.model.artifact_bytes,
            artifact_gzip_bytes: c.model.artifact_gzip_bytes,
            compression_rate: c.model.compression_rate,
            dtype: c.model.dtype.as_deref(),
            float_layers: c.model.float_layers.as_ref().map(|f| f.len()),
            accuracy: q.map(|q| q.accuracy),
            precision_macro: q.map(|q| q.precision_macro),
            recall_macro: q.map(|q| q.recall_macro),
            f1_macro: q.map(|q| q.f1_macro),
            f1_weighted: q.map(|q| q.f1_weighted),
            top1_agreement: fid.map(|f| f.top1_agreement),
            mean_cosine: fid.map(|f| f.mean_cosine),
            max_abs_diff: fid.map(|f| f.max_abs_diff),
            embedding_mean_cosine: emb.map(|e| e.mean_cosine),
            embedding_min_cosine: emb.map(|e| e.min_cosine),
            embedding_spearman: emb.and_then(|e| e.spearman),
            embedding_pearson: emb.and_then(|e| e.pearson),
            bytes_per_batch: c.bytes_per_batch,
            arithmetic_intensity: roof.map(|r| r.arithmetic_intensity),
            achieved_gflops: roof.map(|r| r.achieved_gflops),
            achieved_gbs: roof.map(|r| r.achieved_gbs),
            roofline_gflops: roof.map(|r| r.roof_gflops),
            roofline_efficiency: roof.map(|r| r.efficiency),
            server_target_qps: server.and_then(|v| v.target_qps),
            server_offered_qps: server.map(|v| v.offered_qps),
            server_achieved_qps: server.map(|v| v.achieved_qps),
            server_served: server.map(|v| v.served),
            server_dropped: server.map(|v| v.dropped),
            server_unserved: server.map(|v| v.unserved),
            server_late: server.map(|v| v.late),
            server_saturated: server.map(|v| if v.saturated { "yes" } else { "no" }),
            server_max_batch: server.map(|v| v.max_batch),
            server_mean_batch: server.map(|v| v.mean_batch),
            max_qps: search.and_then(|x| x.max_qps),
            max_qps_failing: search.and_then(|x| x.failing_qps),
            max_qps_p99_bound_ms: search.map(|x| x.p99_bound_ms),
            search_probes: search.map(|x| x.probes.len()),
            samples_per_query: c.multi_stream().map(|v| v.samples_per_query),
        }
    }
}

/// A stage's median: from its own statistics, or the whole latency when it is the only one.
fn stage_p50(c: &CaseResult, stage: &str) -> Option<f64> {
    match &c.stages {
        Some(stages) => stages.get(stage).map(|l| l.summary.p50),
        None if c.timed.len() == 1 && c.timed[0] == stage => {
            c.latency_ms.as_ref().map(|l| l.summary.p50)
        }
        None => None,
    }
}

/// The run's CSV (one row per case, no raw samples) as text.
pub fn csv_text(run: &RunResult) -> String {
    let mut buf = Vec::new();
    write_csv_to(run, &mut buf).expect("writing CSV to memory cannot fail");
    String::from_utf8(buf).expect("CSV of UTF-8 fields is UTF-8")
}

pub(super) fn write_csv_to(run: &RunResult, w: impl std::io::Write) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    for case in &run.cases {
        csv.serialize(CsvRow::of(case))
            .map_err(std::io::Error::other)?;
    }
    csv.flush()
}
