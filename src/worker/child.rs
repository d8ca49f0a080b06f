//! The child side: the hidden subcommand's entry point, and the measurement of one case in
//! its fresh process (the scenario kind's measurement, per-layer profile, heap pass, memory).

use std::io::{Read, Write};
use std::time::Instant;

use super::llm_profile;
use super::meter::{Meter, WorkerObserver, REFERENCE_BUDGET};
use super::pipeline::{prepare_inputs, LayerSteps, Pipeline};
use super::protocol::{
    send, Fault, Measurement, ProfileRequest, WorkerMessage, WorkerRequest, PARENT_PID_ENV,
};
use crate::measure::{self, SamplerConfig, Workload};
use crate::model::{error_text, LoadedModel};
use crate::probe::energy;
use crate::probe::memory::{self};
use crate::profile::RawProfile;
use crate::schema::{ColdStart, GpuMemory, MemoryInfo, ThreadsInEffect};
use crate::target::DeviceKind;

/// Forward passes in the heap pass: the peak is the same each time once warm; a few
/// passes catch allocator reuse patterns.
const HEAP_PASS_ITERATIONS: u64 = 5;

/// Why a worker measured nothing.
#[derive(Debug)]
enum CaseError {
    Failed(String),
    Unavailable(String),
}

impl From<String> for CaseError {
    fn from(s: String) -> Self {
        CaseError::Failed(s)
    }
}

impl From<&str> for CaseError {
    fn from(s: &str) -> Self {
        CaseError::Failed(s.to_string())
    }
}

/// Entry point of the hidden subcommand. Returns the process exit code.
pub fn worker_main() -> i32 {
    die_with_parent();
    let mut input = String::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the request: {e}"))
        .and_then(|_| {
            serde_json::from_str::<WorkerRequest>(&input).map_err(|e| format!("bad request: {e}"))
        })
        .map_err(CaseError::Failed)
        .and_then(|req| measure_case(&req, &mut out));
    let (message, code) = match result {
        Ok(m) => (WorkerMessage::Done(Box::new(m)), 0),
        Err(CaseError::Failed(message)) => (WorkerMessage::Error { message }, 1),
        Err(CaseError::Unavailable(reason)) => (WorkerMessage::Unavailable { reason }, 0),
    };
    send(&mut out, &message);
    code
}

/// A worker whose parent was killed must not run on alone (it is in its own process group,
/// so the terminal will not stop it). PR_SET_PDEATHSIG covers a parent that dies from now on;
/// a parent that died before the prctl is caught by comparing `getppid()` with the pid the
/// parent passed (`PARENT_PID_ENV`): the orphan's parent is then a reaper. Comparing with 1
/// instead would refuse every worker of an inferbench that is itself PID 1, as in a
/// container.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a signal number for this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    #[cfg(unix)]
    if let Some(parent) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<libc::pid_t>().ok())
    {
        // SAFETY: getppid has no preconditions; _exit ends this process at once.
        unsafe {
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
    }
}

/// Times every layer on its own with the case's stopping rule, then records `trace` more
/// iterations' step boundaries for the Chrome trace (clock reads into a buffer reserved
/// beforehand).
fn profile_layers(
    model: &mut dyn LoadedModel,
    device: &candle_core::Device,
    input: &candle_core::Tensor,
    batch: usize,
    cfg: &SamplerConfig,
    trace: usize,
) -> Result<RawProfile, String> {
    let fail = |e: candle_core::Error| format!("profiled forward pass failed: {}", error_text(&e));
    let n = model.step_count();
    let mut steps = LayerSteps {
        model,
        device,
        input: input.clone(),
        x: None,
    };
    let sampled = measure::sample(&mut steps, cfg, &mut ()).map_err(fail)?;
    let to_ms = |v: &[u64]| v.iter().map(|&ns| ns as f64 / 1e6).collect::<Vec<f64>>();
    let samples_ms: Vec<Vec<f64>> = if n > 1 {
        sampled.stage_samples_ns.iter().map(|v| to_ms(v)).collect()
    } else {
        // One step: the span is the step.
        vec![to_ms(&sampled.samples_ns)]
    };
    let mut marks: Vec<Instant> = Vec::with_capacity(trace * (n + 1));
    for _ in 0..trace {
        marks.push(Instant::now());
        for step in 0..n {
            steps.run_stage(step).map_err(fail)?;
            marks.push(Instant::now());
        }
    }
    let origin = marks.first().copied();
    let ns = |t: Instant| origin.map(|o| (t - o).as_nanos() as u64).unwrap_or(0);
    let trace_ns = marks
        .chunks(n + 1)
        .map(|it| {
            it.windows(2)
                .map(|w| [ns(w[0]), (w[1] - w[0]).as_nanos() as u64])
                .collect()
        })
        .collect();
    let model = steps.model;
    Ok(RawProfile {
        layers: model.layers(),
        weight_bytes: model.step_weight_bytes(),
        traffic_bytes: model.step_traffic_bytes(batch),
        samples_ms,
        warmup_iterations: sampled.warmup_iterations,
        stop_reason: sampled.stop_reason,
        noise: sampled.noise,
        trace_ns,
        forward_after_ms: Vec::new(),
    })
}

fn measure_case(req: &WorkerRequest, out: &mut impl Write) -> Result<Measurement, CaseError> {
    let case = &req.case;
    // Pin first: threads created from here on (rayon's, candle's) inherit the affinity.
    if let Some(cores) = &case.target.cores {
        crate::target::pin_to_cores(cores)
            .map_err(|e| format!("cannot pin to cores {cores:?}: {e}"))?;
    }
    let rss_before_load = memory::rss_bytes("self").unwrap_or(0);
    let device = open_device(&case.target)?;
    let context_before_load = memory::cuda_context_used_bytes(&device);
    let built = Instant::now();
    let mut model = case
        .arch
        .kind()
        .load(&case.weights, &device)
        .map_err(|e| e.to_string())?;
    let build_s = built.elapsed().as_secs_f64();
    let rss_after_load = memory::rss_bytes("self").unwrap_or(0);
    let context_after_load = memory::cuda_context_used_bytes(&device);
    match req.fault {
        Some(Fault::Crash) => std::process::abort(),
        Some(Fault::Hang) => loop {
            std::thread::park();
        },
        None => {}
    }
    let input = prepare_inputs(case, model.as_mut(), &device)?;
    let (params, weight_bytes) = (model.params(), model.weight_bytes());
    let traffic_bytes_per_batch = model.step_traffic_bytes(case.batch_size).iter().sum();
    let mut pipeline = Pipeline {
        model: model.as_mut(),
        device: &device,
        stages: case.settings.timed.clone(),
        input,
        current: 0,
        logits: None,
        slowdown: req.slowdown.filter(|f| *f > 0.0),
    };
    let cfg = SamplerConfig::from(&case.settings);
    let clock_overhead_ns = measure::clock_overhead_ns();
    let mut observer = WorkerObserver::new(
        out,
        Meter::choose(&req.energy, case.target.device),
        case.batch_size,
    );
    observer
        .reference_us
        .push(measure::reference::reference_us(REFERENCE_BUDGET));
    let measured = case
        .scenario
        .measure(&mut pipeline, &cfg, &mut observer)
        .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
    let sampled = measured.sampled;
    // A kind that ran other batch sizes (server) leaves the pipeline on one of them; the
    // profile and the heap pass run on the case's own batch.
    pipeline.current = 0;
    observer
        .reference_us
        .push(measure::reference::reference_us(REFERENCE_BUDGET));
    // An energy reading that failed is reported as absent, not as zero.
    let energy = observer.energy.take().and_then(Result::ok);
    let profile = match req.profile {
        Some(p) => Some(profile_case(&mut pipeline, &cfg, case.batch_size, p)?),
        None => None,
    };
    let memory = memory_figures(
        &mut pipeline,
        case.target.device,
        [rss_before_load, rss_after_load],
        [context_before_load, context_after_load],
    )?;
    Ok(Measurement {
        samples_ms: sampled
            .samples_ns
            .iter()
            .map(|&ns| ns as f64 / 1e6)
            .collect(),
        warmup_iterations: sampled.warmup_iterations,
        warmup_s: sampled.warmup_s,
        measured_s: sampled.measured_s,
        stop_reason: sampled.stop_reason,
        noise: sampled.noise,
        threads: threads_in_effect(case.target.threads),
        params,
        weight_bytes,
        flops_per_sample: case.arch.kind().flops_per_sample(),
        clock_overhead_ns,
        build_s,
        memory,
        energy,
        cold_start: ColdStart {
            load_ms: build_s * 1e3,
            first_inference_ms: sampled.first_iteration_ns as f64 / 1e6,
            warmup_ms: sampled.warmup_s * 1e3,
            warmup_iterations: sampled.warmup_iterations,
            warmup_end: sampled.warmup_end,
            warmup_trace_ms: sampled.warmup_trace_ms.clone(),
        },
        stage_samples_ms: case
            .settings
            .timed
            .iter()
            .zip(&sampled.stage_samples_ns)
            .map(|(stage, ns)| (*stage, ns.iter().map(|&v| v as f64 / 1e6).collect()))
            .collect(),
        traffic_bytes_per_batch: Some(traffic_bytes_per_batch),
        profile,
        scenario: measured.raw,
        reference_us: std::mem::take(&mut observer.reference_us),
        sched: observer.sched_figures.take(),
    })
}

/// The profile of a case: every layer timed on its own after the unprofiled window, in the
/// same process, on the same input; then the unprofiled forward pass is sampled once more,
/// so the two bracket it.
fn profile_case(
    pipeline: &mut Pipeline<'_>,
    cfg: &SamplerConfig,
    batch: usize,
    request: ProfileRequest,
) -> Result<RawProfile, String> {
    // A language model's forward pass (a whole repetition, with a decode's untimed context
    // prefill) is not what its case times: its profile is held against the case's samples.
    if let Some(own) = llm_profile::profile(pipeline.model, cfg) {
        return own;
    }
    let input = pipeline.input[pipeline.current].clone();
    let mut raw = profile_layers(
        pipeline.model,
        pipeline.device,
        &input,
        batch,
        cfg,
        request.trace_iterations,
    )?;
    let again = measure::sample(pipeline, cfg, &mut ())
        .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
    raw.forward_after_ms = again.samples_ns.iter().map(|&ns| ns as f64 / 1e6).collect();
    Ok(raw)
}

/// The case's memory figures, after the timed work: the heap pass (separate from the latency
/// window so the counting never runs while timing), the GPU's views, and peak RSS last.
/// `rss` and `context` hold the readings before and after the model was built.
fn memory_figures(
    pipeline: &mut Pipeline<'_>,
    device: DeviceKind,
    rss: [u64; 2],
    context: [Result<Option<u64>, memory::DeviceMemoryError>; 2],
) -> Result<MemoryInfo, String> {
    let iterations = pipeline
        .model
        .heap_pass_iterations()
        .unwrap_or(HEAP_PASS_ITERATIONS);
    let peak_heap_bytes = if memory::counting_allocator_installed() {
        memory::start_heap_window();
        let stages = pipeline.stages();
        let result =
            (0..iterations).try_for_each(|_| (0..stages).try_for_each(|s| pipeline.run_stage(s)));
        let peak = memory::end_heap_window();
        result.map_err(|e| format!("forward pass failed in the heap pass: {}", error_text(&e)))?;
        Some(peak)
    } else {
        None
    };
    let [context_before_load, context_after_load] = context;
    let gpu = match device {
        DeviceKind::Cuda(index) => Some(gpu_memory(
            energy::nvml::Gpu::open(index).and_then(|g| g.memory()),
            [
                context_before_load,
                context_after_load,
                memory::cuda_context_used_bytes(pipeline.device),
            ],
        )),
        DeviceKind::Cpu => None,
    };
    Ok(MemoryInfo {
        rss_before_load_bytes: rss[0],
        rss_after_load_bytes: rss[1],
        peak_rss_bytes: memory::peak_rss_bytes().unwrap_or(0),
        peak_heap_bytes,
        heap_pass_iterations: if peak_heap_bytes.is_some() {
            iterations
        } else {
            0
        },
        weight_bytes: pipeline.model.weight_bytes() as u64,
        gpu,
    })
}

/// The thread counts in effect in this worker, as the libraries themselves report them.
fn threads_in_effect(requested: usize) -> ThreadsInEffect {
    ThreadsInEffect {
        requested,
        rayon_pool: rayon::current_num_threads(),
        candle: candle_core::utils::get_num_threads(),
        env: crate::probe::env::THREAD_VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect(),
        affinity: crate::target::available_cores(),
    }
}

/// A CUDA case's device memory from its two views, keeping why a view is missing.
/// `context` holds the driver's readings before load, after load and after the run.
fn gpu_memory(
    nvml: Result<energy::GpuMemoryReading, energy::EnergyError>,
    context: [Result<Option<u64>, memory::DeviceMemoryError>; 3],
) -> GpuMemory {
    let mut notes = Vec::new();
    let nvml = nvml.map_err(|why| notes.push(why.to_string())).ok();
    let [before, after_load, after_run] = context.map(|reading| match reading {
        Ok(bytes) => bytes,
        Err(why) => {
            let why = why.to_string();
            if !notes.contains(&why) {
                notes.push(why);
            }
            None
        }
    });
    GpuMemory {
        process_used_bytes: nvml.and_then(|m| m.process_used),
        device_used_bytes: nvml.map(|m| m.device_used),
        device_total_bytes: nvml.map(|m| m.device_total),
        context_used_before_load_bytes: before,
        context_used_after_load_bytes: after_load,
        context_used_after_run_bytes: after_run,
        notes,
    }
}

/// The case's candle device. A CUDA device that cannot be opened (no GPU, no driver, a
/// build without the `cuda` feature) makes the case unavailable, not failed.
fn open_device(target: &crate::target::Target) -> Result<candle_core::Device, CaseError> {
    target.candle_device().map_err(|e| {
        let why = format!(
            "device {} is not available here: {}",
            target.device,
            error_text(&e)
        );
        match target.device {
            DeviceKind::Cuda(_) => CaseError::Unavailable(why),
            DeviceKind::Cpu => CaseError::Failed(why),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;

    /// A CUDA target whose device cannot be opened makes the case unavailable (skipped),
    /// never failed; a CPU device always opens.
    #[test]
    fn a_missing_cuda_device_is_unavailable_not_failed() {
        let cpu = Target::new(None, DeviceKind::Cpu, 1);
        assert!(open_device(&cpu).is_ok());
        // A build without the feature never opens one; with it, ordinal 4095 does not exist.
        let cuda = Target::new(None, DeviceKind::Cuda(4095), 1);
        match open_device(&cuda) {
            Err(CaseError::Unavailable(why)) => assert!(why.contains("cuda:4095"), "{why}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    /// The CUDA driver's view is read through candle's device: nothing on a CPU device.
    #[test]
    fn a_cpu_device_has_no_cuda_context_reading() {
        assert_eq!(
            memory::cuda_context_used_bytes(&candle_core::Device::Cpu),
            Ok(None)
        );
    }

    /// Each GPU memory view stands on its own: NVML missing keeps the driver's readings, and
    /// every distinct reason for a missing figure is kept once.
    #[test]
    fn gpu_memory_keeps_each_view_and_why_one_is_missing() {
        let no_driver =
            || Err::<Option<u64>, _>(memory::DeviceMemoryError("no context".to_string()));
        let m = gpu_memory(
            Err(energy::EnergyError::NvmlAbsent(
                "libnvidia-ml.so not found".into(),
            )),
            [Ok(Some(100)), Ok(Some(700)), no_driver()],
        );
        assert_eq!(m.process_used_bytes, None);
        assert_eq!(m.device_used_bytes, None);
        assert_eq!(m.context_used_before_load_bytes, Some(100));
        assert_eq!(m.context_used_after_load_bytes, Some(700));
        assert_eq!(m.context_used_after_run_bytes, None);
        assert_eq!(m.notes.len(), 2, "{:?}", m.notes);

        let nvml = energy::GpuMemoryReading {
            device_used: 5_000,
            device_total: 80_000,
            process_used: Some(1_200),
        };
        let m = gpu_memory(Ok(nvml), [no_driver(), no_driver(), no_driver()]);
        assert_eq!(m.process_used_bytes, Some(1_200));
        assert_eq!(m.device_used_bytes, Some(5_000));
        assert_eq!(m.device_total_bytes, Some(80_000));
        assert_eq!(m.context_used_after_load_bytes, None);
        assert_eq!(m.notes, vec!["cuMemGetInfo failed: no context".to_string()]);
    }
}
