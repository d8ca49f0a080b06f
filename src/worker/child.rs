//! The isolated worker: every case runs in a fresh child process of this binary.
//!
//! Protocol: the parent starts `inferbench __worker` with the target's thread variables set,
//! in its own process group (so a terminal's Ctrl-C reaches only the parent), writes one
//! JSON `WorkerRequest` to its stdin and closes it. The worker answers on stdout with JSON
//! lines: any number of `progress` messages, then one `done` (the measurement) or `error`.
//! A crash, a non-zero exit, a missing answer, the case timeout or the memory limit make the
//! case `failed` with the reason; the parent never waits longer than the timeout.
//!
//! Inside the worker, one pass per metric: latency (energy counters read at the window's
//! edges), then a short heap pass with the counting allocator on; peak RSS is read last.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::server::{self, ProbeRaw, SearchEnd, ServeConfig};
use crate::measure::{self, Observer, Phase, Progress, SamplerConfig, StopReason};
use crate::measure::{WarmupEnd, Workload};
use crate::model::bert::TextEncoder;
use crate::model::{error_text, synthetic_raw_input, Architecture, Network};
use crate::plan::Case;
use crate::probe::energy::{self, EnergyInfo, EnergyMethod, Rapl, RaplReading, Tdp};
use crate::probe::memory::{self, GpuMemory, MemoryInfo};
use crate::profile::RawProfile;
use crate::suite::{Load, ServerLoad, ServerTarget, Stage};
use crate::target::DeviceKind;

/// The hidden subcommand that runs one case.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// Forward passes in the heap pass: the peak is the same each time once warm; a few
/// passes catch allocator reuse patterns.
const HEAP_PASS_ITERATIONS: u64 = 5;

/// Test-only faults (hidden `run --inject-fault`), to prove a broken case cannot sink a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Abort the worker process after the model is built (as a segfault would).
    Crash,
    /// Stop making progress after the model is built, so the parent's timeout must fire.
    Hang,
}

/// How the worker should measure energy: decided by the parent once per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergySetup {
    pub tdp: Tdp,
    /// Idle power measured by the parent before the run, per counter.
    pub rapl_idle_watts: Option<f64>,
    pub nvml_idle_watts: Option<f64>,
    pub powercap_root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRequest {
    pub case: Case,
    pub fault: Option<Fault>,
    pub energy: EnergySetup,
    /// Test only (`run --inject-slowdown`): after each forward pass, busy-wait for this
    /// fraction of the pass's own duration, inside the timed region.
    #[serde(default)]
    pub slowdown: Option<f64>,
    /// `inferbench profile`: after the case's own (unprofiled) measurement, time every layer
    /// on its own, then record a few iterations for the Chrome trace.
    #[serde(default)]
    pub profile: Option<ProfileRequest>,
}

/// What a profiled case records besides its unprofiled measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRequest {
    /// Iterations of the trace pass (every layer of each one becomes a trace event).
    pub trace_iterations: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    Progress(Progress),
    Done(Box<Measurement>),
    Error {
        message: String,
    },
    /// The case's device does not exist here (a CUDA target on a machine without a GPU):
    /// the case is `skipped` with this reason rather than failed.
    Unavailable {
        reason: String,
    },
}

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

/// The thread counts in effect inside the worker, as the libraries themselves report them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadsInEffect {
    pub requested: usize,
    /// Size of rayon's global pool (gemm matmul, conv2d).
    pub rayon_pool: usize,
    /// candle's own count (quantized matmul, elementwise ops).
    pub candle: usize,
    pub env: BTreeMap<String, String>,
    /// CPU cores the worker could run on (its affinity mask), pinned or not.
    #[serde(default)]
    pub affinity: Vec<usize>,
}

/// What a worker measured for one case: raw data, before statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub samples_ms: Vec<f64>,
    pub warmup_iterations: u64,
    pub warmup_s: f64,
    pub measured_s: f64,
    pub stop_reason: StopReason,
    pub noise: f64,
    pub threads: ThreadsInEffect,
    pub params: usize,
    pub weight_bytes: usize,
    pub flops_per_sample: u64,
    pub clock_overhead_ns: f64,
    /// Time to build the model's weights on the device (not part of any latency).
    pub build_s: f64,
    pub memory: MemoryInfo,
    pub energy: Option<EnergyInfo>,
    pub cold_start: ColdStart,
    /// Latencies of each timed stage when there are several, in stage order.
    pub stage_samples_ms: Vec<(Stage, Vec<f64>)>,
    /// Bytes one forward pass of the batch moves (traffic model: weights once, every layer's
    /// input and output activations once).
    #[serde(default)]
    pub traffic_bytes_per_batch: Option<u64>,
    /// Per-layer timings, when the request asked for a profile.
    #[serde(default)]
    pub profile: Option<RawProfile>,
    /// Server cases: every server run (one, or a search's probes); `samples_ms` is empty.
    #[serde(default)]
    pub server: Option<ServerMeasurement>,
    /// Median times of the reference kernel (`measure::reference`), in µs, in the order
    /// taken: just before the measured window, between its chunks (with each progress
    /// report, outside the timed chunks), and just after. How fast the machine itself was.
    #[serde(default)]
    pub reference_us: Vec<f64>,
}

/// The raw record of a server case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMeasurement {
    pub probes: Vec<ProbeRaw>,
    /// The probe the case reports: the only one, or the search's highest passing rate.
    pub chosen: Option<usize>,
    pub search: Option<SearchRaw>,
}

/// How a max-QPS search went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRaw {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    pub start_capacity_qps: f64,
    pub passing_qps: Option<f64>,
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
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
/// so the terminal will not stop it).
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a signal number for this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            libc::_exit(1);
        }
    }
}

fn send(out: &mut impl Write, message: &WorkerMessage) {
    // A parent that went away cannot be told anything; the worker simply ends.
    if let Ok(line) = serde_json::to_string(message) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The energy source chosen for this case, with what the window's edges read.
enum Meter {
    Rapl {
        rapl: Rapl,
        idle: Option<f64>,
        start: Option<RaplReading>,
    },
    Nvml {
        gpu: Box<energy::nvml::Gpu>,
        idle: Option<f64>,
        start: Option<u64>,
    },
    Estimate {
        tdp: Tdp,
        note: String,
        start_cpu_s: f64,
    },
}

impl Meter {
    fn choose(setup: &EnergySetup, device: DeviceKind) -> Meter {
        let mut notes = Vec::new();
        if let DeviceKind::Cuda(index) = device {
            match energy::nvml::Gpu::open(index) {
                Ok(gpu) if gpu.energy_mj().is_ok() => {
                    return Meter::Nvml {
                        gpu: Box::new(gpu),
                        idle: setup.nvml_idle_watts,
                        start: None,
                    }
                }
                Ok(gpu) => notes.push(gpu.energy_mj().err().unwrap_or_default()),
                Err(why) => notes.push(why),
            }
        } else {
            match Rapl::open(&setup.powercap_root) {
                Ok(rapl) => {
                    return Meter::Rapl {
                        rapl,
                        idle: setup.rapl_idle_watts,
                        start: None,
                    }
                }
                Err(why) => notes.push(why),
            }
        }
        Meter::Estimate {
            tdp: setup.tdp.clone(),
            note: notes.join("; "),
            start_cpu_s: 0.0,
        }
    }
}

/// The worker's observer: progress to the parent, energy counters at the window's edges.
struct WorkerObserver<'a, W: Write> {
    out: &'a mut W,
    meter: Meter,
    window_start: Option<Instant>,
    batch_size: usize,
    energy: Option<Result<EnergyInfo, String>>,
    /// Reference-kernel times around and during the window (see `Measurement`).
    reference_us: Vec<f64>,
    /// What the reference kernel cost inside the window, kept out of its energy: wall
    /// seconds, and joules (RAPL, NVML) or CPU seconds (estimate) read around each run.
    reference_cost: ReferenceCost,
}

#[derive(Default)]
struct ReferenceCost {
    wall_s: f64,
    joules: f64,
    cpu_s: f64,
}

impl<W: Write> WorkerObserver<'_, W> {
    /// Times the reference kernel between chunks of the window, reading the meter on both
    /// sides so that its cost is not counted in the window's energy.
    fn reference_in_window(&mut self) {
        let wall = Instant::now();
        let cpu = energy::process_cpu_time_s();
        let rapl = match &self.meter {
            Meter::Rapl { rapl, .. } => rapl.read().ok(),
            _ => None,
        };
        let gpu_mj = match &self.meter {
            Meter::Nvml { gpu, .. } => gpu.energy_mj().ok(),
            _ => None,
        };
        self.reference_us
            .push(measure::reference::reference_us(REFERENCE_DURING));
        let cost = &mut self.reference_cost;
        match &self.meter {
            Meter::Rapl { rapl: meter, .. } => {
                if let (Some(a), Ok(b)) = (rapl, meter.read()) {
                    cost.joules += meter.joules_between(&a, &b);
                }
            }
            Meter::Nvml { gpu, .. } => {
                if let (Some(a), Ok(b)) = (gpu_mj, gpu.energy_mj()) {
                    cost.joules += b.saturating_sub(a) as f64 / 1000.0;
                }
            }
            Meter::Estimate { .. } => cost.cpu_s += energy::process_cpu_time_s() - cpu,
        }
        cost.wall_s += wall.elapsed().as_secs_f64();
    }
}

impl<W: Write> measure::Observer for WorkerObserver<'_, W> {
    fn progress(&mut self, p: &Progress) {
        send(self.out, &WorkerMessage::Progress(p.clone()));
        // Between timed chunks of the window: a short look at the machine's own speed.
        if p.phase == measure::Phase::Sampling && self.window_start.is_some() {
            self.reference_in_window();
        }
    }

    fn window_started(&mut self) {
        match &mut self.meter {
            Meter::Rapl { rapl, start, .. } => *start = rapl.read().ok(),
            Meter::Nvml { gpu, start, .. } => *start = gpu.energy_mj().ok(),
            Meter::Estimate { start_cpu_s, .. } => *start_cpu_s = energy::process_cpu_time_s(),
        }
        self.window_start = Some(Instant::now());
    }

    fn window_ended(&mut self, samples: usize) {
        // The reference kernel's runs inside the window are not the model's.
        let cost = std::mem::take(&mut self.reference_cost);
        let window_s = self
            .window_start
            .map(|t| (t.elapsed().as_secs_f64() - cost.wall_s).max(0.0))
            .unwrap_or(0.0);
        let inferences = (samples * self.batch_size) as u64;
        self.energy = Some(match &self.meter {
            Meter::Rapl { rapl, idle, start } => match (start, rapl.read()) {
                (Some(a), Ok(b)) => {
                    let mut info = EnergyInfo::new(
                        EnergyMethod::Rapl,
                        (rapl.joules_between(a, &b) - cost.joules).max(0.0),
                        *idle,
                        window_s,
                        inferences,
                    );
                    info.domains = rapl.domain_names();
                    Ok(info)
                }
                (None, _) => Err("RAPL could not be read at the window's start".into()),
                (_, Err(e)) => Err(e),
            },
            Meter::Nvml { gpu, idle, start } => match (start, gpu.energy_mj()) {
                (Some(a), Ok(b)) => {
                    let joules = (b.saturating_sub(*a) as f64 / 1000.0 - cost.joules).max(0.0);
                    let mut info =
                        EnergyInfo::new(EnergyMethod::Nvml, joules, *idle, window_s, inferences);
                    info.domains = vec!["gpu".into()];
                    Ok(info)
                }
                (None, _) => Err("NVML could not be read at the window's start".into()),
                (_, Err(e)) => Err(e),
            },
            Meter::Estimate {
                tdp,
                note,
                start_cpu_s,
            } => {
                let cpu_s = (energy::process_cpu_time_s() - start_cpu_s - cost.cpu_s).max(0.0);
                let (joules, estimate) = energy::estimate_from_cpu_time(cpu_s, tdp);
                let mut info = EnergyInfo::new(
                    EnergyMethod::EstimateTdp,
                    joules,
                    None,
                    window_s,
                    inferences,
                );
                info.domains = vec!["cpu-time".into()];
                info.estimate = Some(estimate);
                info.note = (!note.is_empty()).then(|| note.clone());
                Ok(info)
            }
        });
    }
}

/// A case's raw inputs: 8-bit values for the mlp and cnn, sentences for a bert (with the
/// tokenizer that turns them into token ids: its preprocess stage).
enum RawInput {
    Values(candle_core::Tensor),
    Text {
        sentences: Vec<String>,
        encoder: std::rc::Rc<TextEncoder>,
    },
}

/// One inference as stages over prepared inputs; `stages` are the timed ones, in order.
struct Pipeline<'a> {
    net: &'a Network,
    device: &'a candle_core::Device,
    stages: Vec<Stage>,
    /// Raw inputs and model inputs, one per batch size the case runs (index = size - 1 for
    /// server cases; a single entry otherwise), all prepared before timing.
    raw: Vec<RawInput>,
    input: Vec<candle_core::Tensor>,
    /// Which entry of `raw` / `input` the next iteration uses.
    current: usize,
    logits: Option<candle_core::Tensor>,
    /// Test only (`run --inject-slowdown`): extra busy time per forward pass, as a fraction
    /// of the pass's own duration.
    slowdown: Option<f64>,
}

/// Classes the postprocess stage ranks.
const TOP_K: usize = 5;

impl Workload for Pipeline<'_> {
    type Error = candle_core::Error;

    fn stages(&self) -> usize {
        self.stages.len()
    }

    fn run_stage(&mut self, stage: usize) -> candle_core::Result<()> {
        match self.stages[stage] {
            Stage::Preprocess => {
                self.input[self.current] = match &self.raw[self.current] {
                    RawInput::Values(raw) => self.net.preprocess(raw)?,
                    RawInput::Text { sentences, encoder } => {
                        encoder.encode_tensor(sentences, self.device)?
                    }
                }
            }
            // Without the test-only slowdown nothing but the forward pass runs here: no
            // extra clock read inside the timed region.
            Stage::Forward => match self.slowdown {
                None => self.logits = Some(self.net.forward(&self.input[self.current])?),
                Some(f) => {
                    let started = Instant::now();
                    self.logits = Some(self.net.forward(&self.input[self.current])?);
                    self.device.synchronize()?;
                    let done = Instant::now();
                    injected_delay(done + (done - started).mul_f64(f));
                }
            },
            Stage::Postprocess => {
                let logits = match &self.logits {
                    Some(l) => l,
                    None => {
                        return Err(candle_core::Error::Msg("postprocess before forward".into()))
                    }
                };
                match &self.raw[self.current] {
                    // A sentence encoder's answer is its embeddings, copied to the host.
                    RawInput::Text { .. } => {
                        std::hint::black_box(logits.to_vec2::<f32>()?);
                    }
                    RawInput::Values(_) => {
                        std::hint::black_box(self.net.postprocess(logits, TOP_K)?);
                    }
                }
            }
        }
        // Stage boundaries are only meaningful once the device has finished the work.
        self.device.synchronize()
    }
}

/// The forward pass one step (layer) at a time, for the profiler: each step is a timed stage
/// that ends with a device synchronisation, so its clock read is right on a GPU too (on the
/// CPU candle runs eagerly and `synchronize` is a no-op).
struct LayerSteps<'a> {
    net: &'a Network,
    device: &'a candle_core::Device,
    input: candle_core::Tensor,
    /// The previous step's output.
    x: Option<candle_core::Tensor>,
}

impl Workload for LayerSteps<'_> {
    type Error = candle_core::Error;

    fn stages(&self) -> usize {
        self.net.step_count()
    }

    fn run_stage(&mut self, step: usize) -> candle_core::Result<()> {
        let y = match (step, &self.x) {
            (0, _) | (_, None) => self.net.forward_step(step, &self.input)?,
            (_, Some(x)) => self.net.forward_step(step, x)?,
        };
        self.x = Some(y);
        self.device.synchronize()
    }
}

/// Times every layer on its own with the case's stopping rule, then records `trace` more
/// iterations' step boundaries for the Chrome trace (clock reads into a buffer reserved
/// beforehand).
fn profile_layers(
    net: &Network,
    device: &candle_core::Device,
    input: &candle_core::Tensor,
    batch: usize,
    cfg: &SamplerConfig,
    trace: usize,
) -> Result<RawProfile, String> {
    let fail = |e: candle_core::Error| format!("profiled forward pass failed: {}", error_text(&e));
    let mut steps = LayerSteps {
        net,
        device,
        input: input.clone(),
        x: None,
    };
    let n = net.step_count();
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
    Ok(RawProfile {
        layers: net.layer_specs(),
        weight_bytes: net.step_weight_bytes().to_vec(),
        traffic_bytes: net.step_traffic_bytes(batch),
        samples_ms,
        warmup_iterations: sampled.warmup_iterations,
        stop_reason: sampled.stop_reason,
        noise: sampled.noise,
        trace_ns,
        forward_after_ms: Vec::new(),
    })
}

/// A server batch of `k` queries: every timed stage on the prepared batch of size `k`.
impl measure::server::BatchWorkload for Pipeline<'_> {
    type Error = candle_core::Error;

    fn run_batch(&mut self, k: usize) -> candle_core::Result<()> {
        self.current = k.clamp(1, self.input.len()) - 1;
        (0..self.stages.len()).try_for_each(|s| self.run_stage(s))
    }
}

/// Cold-start figures of a case, measured in its fresh worker before warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStart {
    /// Reading and preparing the variant's weights on the target.
    pub load_ms: f64,
    /// The very first iteration of the timed stages (lazy allocation, caches); never a sample.
    pub first_inference_ms: f64,
    pub warmup_ms: f64,
    pub warmup_iterations: u64,
    /// `stable` (the running median settled) or `max_time` (it was still moving).
    pub warmup_end: WarmupEnd,
    /// Median latency of each ~50 ms warm-up block: the warm-up curve.
    pub warmup_trace_ms: Vec<f64>,
}

/// Time given to the reference kernel on each side of the measured window.
const REFERENCE_BUDGET: std::time::Duration = std::time::Duration::from_millis(25);
/// ... and between the window's chunks, with each progress report (every 100 ms or more).
const REFERENCE_DURING: std::time::Duration = std::time::Duration::from_millis(2);

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
    let net = Network::build(&case.arch, &case.weights, &device).map_err(|e| e.to_string())?;
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
    // Inputs are prepared before timing: raw 8-bit inputs, and the model input made from
    // them once; the timed stages (forward by default) then run on them.
    let raw_shape = case
        .raw_input
        .clone()
        .unwrap_or_else(|| Network::default_raw_shape(&case.arch));
    // A server case needs every batch size the dispatcher may form; others one batch.
    let sizes: Vec<usize> = match &case.load {
        Some(Load::Server(load)) => (1..=load.max_batch).collect(),
        _ => vec![case.batch_size],
    };
    // A sentence encoder's tokenizer and sentences, loaded once for every batch size.
    let text = match (&case.text, &case.arch) {
        (Some(text), Architecture::Bert { seq_len, .. }) => {
            let encoder =
                TextEncoder::from_file(&text.tokenizer, *seq_len).map_err(|e| e.to_string())?;
            let all =
                crate::data::text::load_sentences(&text.sentences).map_err(|e| e.to_string())?;
            Some((std::rc::Rc::new(encoder), all))
        }
        (None, Architecture::Bert { .. }) => {
            return Err("a bert case needs its text inputs (tokenizer and sentences)".into())
        }
        _ => None,
    };
    let mut raw = Vec::with_capacity(sizes.len());
    let mut input = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let r = match &text {
            // The batch: the sentences in order, repeated when the batch is larger.
            Some((encoder, all)) => RawInput::Text {
                sentences: (0..size).map(|i| all[i % all.len()].clone()).collect(),
                encoder: encoder.clone(),
            },
            None => RawInput::Values(
                synthetic_raw_input(&raw_shape, size, case.settings.seed ^ 0x1a2b_3c4d, &device)
                    .map_err(|e| format!("cannot build the input batch: {}", error_text(&e)))?,
            ),
        };
        input.push(
            match &r {
                RawInput::Values(raw) => net.preprocess(raw),
                RawInput::Text { sentences, encoder } => encoder.encode_tensor(sentences, &device),
            }
            .map_err(|e| format!("cannot preprocess the input batch: {}", error_text(&e)))?,
        );
        raw.push(r);
    }
    let mut pipeline = Pipeline {
        net: &net,
        device: &device,
        stages: case.settings.timed.clone(),
        raw,
        input,
        current: 0,
        logits: None,
        slowdown: req.slowdown.filter(|f| *f > 0.0),
    };
    let cfg = SamplerConfig::from(&case.settings);
    let clock_overhead_ns = measure::clock_overhead_ns();
    let mut observer = WorkerObserver {
        out,
        meter: Meter::choose(&req.energy, case.target.device),
        window_start: None,
        batch_size: case.batch_size,
        energy: None,
        reference_us: Vec::with_capacity(64),
        reference_cost: ReferenceCost::default(),
    };
    let mut server_record = None;
    observer
        .reference_us
        .push(measure::reference::reference_us(REFERENCE_BUDGET));
    let sampled = match &case.load {
        None => measure::sample(&mut pipeline, &cfg, &mut observer),
        Some(Load::MultiStream { queries, .. }) => {
            measure::sample_queries(&mut pipeline, &cfg, *queries, &mut observer)
        }
        Some(Load::Server(load)) => {
            let (sampled, record) = run_server(&mut pipeline, &cfg, load, &mut observer)
                .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
            server_record = Some(record);
            pipeline.current = 0;
            Ok(sampled)
        }
    }
    .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
    observer
        .reference_us
        .push(measure::reference::reference_us(REFERENCE_BUDGET));
    // An energy reading that failed is reported as absent, not as zero.
    let energy = observer.energy.take().and_then(Result::ok);
    // The profile comes after the unprofiled window, in the same process, on the same input;
    // then the unprofiled forward pass is sampled once more, so the two bracket it.
    let profile = match req.profile {
        Some(p) => {
            let mut raw = profile_layers(
                &net,
                &device,
                &pipeline.input[pipeline.current],
                case.batch_size,
                &cfg,
                p.trace_iterations,
            )?;
            let again = measure::sample(&mut pipeline, &cfg, &mut ())
                .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
            raw.forward_after_ms = again.samples_ns.iter().map(|&ns| ns as f64 / 1e6).collect();
            Some(raw)
        }
        None => None,
    };

    // Heap pass: separate from the latency window so the counting never runs while timing.
    let peak_heap_bytes = if memory::counting_allocator_installed() {
        memory::start_heap_window();
        let stages = pipeline.stages();
        let result = (0..HEAP_PASS_ITERATIONS)
            .try_for_each(|_| (0..stages).try_for_each(|s| pipeline.run_stage(s)));
        let peak = memory::end_heap_window();
        result.map_err(|e| format!("forward pass failed in the heap pass: {}", error_text(&e)))?;
        Some(peak)
    } else {
        None
    };
    let gpu = match case.target.device {
        DeviceKind::Cuda(index) => Some(gpu_memory(
            energy::nvml::Gpu::open(index).and_then(|g| g.memory()),
            [
                context_before_load,
                context_after_load,
                memory::cuda_context_used_bytes(&device),
            ],
        )),
        DeviceKind::Cpu => None,
    };
    let memory = MemoryInfo {
        rss_before_load_bytes: rss_before_load,
        rss_after_load_bytes: rss_after_load,
        peak_rss_bytes: memory::peak_rss_bytes().unwrap_or(0),
        peak_heap_bytes,
        heap_pass_iterations: if peak_heap_bytes.is_some() {
            HEAP_PASS_ITERATIONS
        } else {
            0
        },
        weight_bytes: net.weight_bytes() as u64,
        gpu,
    };
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
        threads: ThreadsInEffect {
            requested: case.target.threads,
            rayon_pool: rayon::current_num_threads(),
            candle: candle_core::utils::get_num_threads(),
            env: crate::probe::env::THREAD_VARS
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
                .collect(),
            affinity: crate::target::available_cores(),
        },
        params: net.params(),
        weight_bytes: net.weight_bytes(),
        flops_per_sample: case.arch.flops_per_sample(),
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
        traffic_bytes_per_batch: Some(net.step_traffic_bytes(case.batch_size).iter().sum()),
        profile,
        server: server_record,
        reference_us: std::mem::take(&mut observer.reference_us),
    })
}

/// A server case: warm-up at batch 1 (its latency estimates the capacity), one untimed pass
/// at every other batch size, then one server run at the target rate, or the max-QPS search.
/// Each run's arrival schedule is drawn before its window; energy spans every run.
fn run_server<W: Write>(
    pipeline: &mut Pipeline<'_>,
    cfg: &SamplerConfig,
    load: &ServerLoad,
    observer: &mut WorkerObserver<'_, W>,
) -> candle_core::Result<(measure::Sampled, ServerMeasurement)> {
    pipeline.current = 0;
    let warm = measure::warm_up(pipeline, cfg, observer)?;
    for k in 2..=pipeline.input.len() {
        measure::server::BatchWorkload::run_batch(pipeline, k)?;
    }
    let serve_cfg = ServeConfig {
        max_batch: load.max_batch,
        max_wait: Duration::from_secs_f64(load.max_wait_ms / 1e3),
        max_queue: load.max_queue,
        duration: Duration::from_secs_f64(load.duration_s),
        drain: Duration::from_secs_f64(load.drain_s),
    };
    let budget_probes = match &load.target {
        ServerTarget::Qps(_) => 1,
        ServerTarget::FindMax(f) => f.max_probes,
    };
    let budget_s = budget_probes as f64 * load.run_bound_s();
    let started = Instant::now();
    let mut probes_done = 0u64;
    observer.window_started();
    let mut probe = |rate: f64| -> candle_core::Result<ProbeRaw> {
        // Drawn before the window: the schedule and every buffer `serve` writes.
        let arrivals = server::poisson_schedule(rate, load.duration_s, load.seed);
        let record = server::serve(pipeline, &arrivals, &serve_cfg)?;
        let p = ProbeRaw::from_record(rate, load.duration_s, &arrivals, &record, load.late_ms);
        probes_done += 1;
        observer.progress(&Progress {
            phase: Phase::Sampling,
            iterations: probes_done,
            elapsed_s: started.elapsed().as_secs_f64(),
            budget_s,
            noise: None,
        });
        Ok(p)
    };
    let measurement = match &load.target {
        ServerTarget::Qps(rate) => ServerMeasurement {
            probes: vec![probe(*rate)?],
            chosen: Some(0),
            search: None,
        },
        ServerTarget::FindMax(f) => {
            let capacity = 1.0 / warm.per_call_s.max(1e-9);
            let s = server::find_max_qps(
                capacity,
                f.p99_bound_ms,
                f.precision,
                f.max_probes,
                load.duration_s,
                &mut probe,
            )?;
            ServerMeasurement {
                chosen: s.best,
                search: Some(SearchRaw {
                    p99_bound_ms: f.p99_bound_ms,
                    precision: f.precision,
                    max_probes: f.max_probes,
                    start_capacity_qps: s.start_capacity_qps,
                    passing_qps: s.passing_qps,
                    failing_qps: s.failing_qps,
                    end: s.end,
                }),
                probes: s.probes,
            }
        }
    };
    let served: usize = measurement.probes.iter().map(|p| p.served).sum();
    observer.window_ended(served);
    let measured_s = measurement.probes.iter().map(|p| p.end_s).sum();
    let sampled = measure::Sampled {
        samples_ns: Vec::new(),
        stage_samples_ns: Vec::new(),
        first_iteration_ns: warm.first_iteration_ns,
        warmup_iterations: warm.warmup_iterations,
        warmup_s: warm.warmup_s,
        warmup_end: warm.warmup_end,
        warmup_trace_ms: warm.trace_ms,
        measured_s,
        stop_reason: StopReason::Queries,
        // No median stopping rule in a server run; the case reports no noise figure.
        noise: 0.0,
    };
    Ok((sampled, measurement))
}

/// A CUDA case's device memory from its two views, keeping why a view is missing.
/// `context` holds the driver's readings before load, after load and after the run.
fn gpu_memory(
    nvml: Result<energy::GpuMemoryReading, String>,
    context: [Result<Option<u64>, String>; 3],
) -> GpuMemory {
    let mut notes = Vec::new();
    let nvml = nvml.map_err(|why| notes.push(why)).ok();
    let [before, after_load, after_run] = context.map(|reading| match reading {
        Ok(bytes) => bytes,
        Err(why) => {
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

/// Test only: keeps the core busy until `until` (a spin on the monotonic clock, no sleep), so
/// the injected slowdown costs CPU time the way slower code would, and scales with each pass.
fn injected_delay(until: Instant) {
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// How a case ended, seen from the parent.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured(Box<Measurement>),
    Failed(String),
    /// The worker found the case's device missing: the case is skipped with this reason.
    Unavailable(String),
    /// The run was interrupted while this case ran; the worker was stopped.
    Interrupted,
}

enum Event {
    Line(String),
    Closed,
}

/// How often the parent looks at the worker's memory when `max_rss_mb` is set, and at the
/// interrupt flag otherwise. Reading /proc/<pid>/status costs microseconds.
const RSS_POLL: Duration = Duration::from_millis(20);
const INTERRUPT_POLL: Duration = Duration::from_millis(200);

/// Runs `case` in a fresh worker process, forwarding its progress, enforcing the timeout and
/// the memory limit, and stopping it if `interrupted` is raised.
#[allow(clippy::too_many_arguments)]
pub fn run_in_worker(
    case: &Case,
    fault: Option<Fault>,
    slowdown: Option<f64>,
    profile: Option<ProfileRequest>,
    energy: &EnergySetup,
    interrupted: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return Outcome::Failed(format!(
                "cannot locate the inferbench binary to start a worker: {e}"
            ))
        }
    };
    let mut command = Command::new(&exe);
    command
        .arg(WORKER_SUBCOMMAND)
        .envs(case.target.worker_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome::Failed(format!("cannot start a worker ({}): {e}", exe.display()))
        }
    };
    let request = WorkerRequest {
        case: case.clone(),
        fault,
        energy: energy.clone(),
        slowdown,
        profile,
    };
    let request = serde_json::to_vec(&request).expect("requests are plain data");
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that died at once is reported through its exit status below.
        let _ = stdin.write_all(&request);
    }

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(Event::Line(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Event::Closed);
    });
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });

    let timeout = Duration::from_secs_f64(case.settings.case_timeout_s);
    let deadline = Instant::now() + timeout;
    let (rss_limit, rss_limit_from) = match (case.target.max_rss_mb, case.settings.max_rss_mb) {
        (Some(mb), _) => (Some(mb * 1024 * 1024), "the target's max_rss_mb"),
        (None, Some(mb)) => (Some(mb * 1024 * 1024), "settings.max_rss_mb"),
        (None, None) => (None, ""),
    };
    let poll = if rss_limit.is_some() {
        RSS_POLL
    } else {
        INTERRUPT_POLL
    };
    let pid = child.id().to_string();
    let mut answer: Option<Result<Measurement, String>> = None;
    let mut unavailable: Option<String> = None;
    let mut unreadable: Option<String> = None;
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    loop {
        if interrupted.load(Ordering::SeqCst) {
            stop(&mut child);
            return Outcome::Interrupted;
        }
        if let (Some(limit), Some(rss)) =
            (rss_limit, rss_limit.and_then(|_| memory::rss_bytes(&pid)))
        {
            if rss > limit {
                stop(&mut child);
                return Outcome::Failed(format!(
                    "memory limit: the worker's RSS reached {:.1} MiB, above {rss_limit_from} = {}; it was stopped",
                    rss as f64 / (1 << 20) as f64,
                    limit / (1024 * 1024)
                ));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(poll)) {
            Ok(Event::Line(line)) => match serde_json::from_str::<WorkerMessage>(&line) {
                Ok(WorkerMessage::Progress(p)) => on_progress(&p),
                Ok(WorkerMessage::Done(m)) => answer = Some(Ok(*m)),
                Ok(WorkerMessage::Error { message }) => answer = Some(Err(message)),
                Ok(WorkerMessage::Unavailable { reason }) => unavailable = Some(reason),
                Err(e) => {
                    unreadable = Some(format!(
                        "unreadable worker output ({e}): {}",
                        truncate(&line, 200)
                    ))
                }
            },
            Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop(&mut child);
                return Outcome::Failed(format!(
                    "timed out after {:.1} s (settings.case_timeout_s); the worker was killed",
                    timeout.as_secs_f64()
                ));
            }
        }
    }
    // stdout is closed: the worker is exiting. Wait for it, but never past the deadline.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    let stderr_text = stderr_reader.join().unwrap_or_default();
    if let Some(reason) = unavailable {
        return Outcome::Unavailable(reason);
    }
    match (answer, status) {
        (Some(Ok(m)), Some(s)) if s.success() => Outcome::Measured(Box::new(m)),
        (Some(Err(message)), _) => Outcome::Failed(message),
        (_, status) => {
            let how = status
                .map(describe_exit)
                .unwrap_or_else(|| "the worker could not be waited for".into());
            let mut reason = format!("worker {how}");
            if let Some(u) = unreadable {
                reason.push_str(&format!("; {u}"));
            }
            let tail = stderr_text.trim();
            if !tail.is_empty() {
                reason.push_str(&format!("; stderr: {}", truncate_tail(tail, 500)));
            }
            Outcome::Failed(reason)
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                6 => " (SIGABRT)",
                9 => " (SIGKILL: killed, for example by the out-of-memory killer)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("crashed: killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(0) => "exited without reporting a measurement".into(),
        Some(code) => format!("exited with code {code} without reporting a measurement"),
        None => "ended without an exit code".into(),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn truncate_tail(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    if count <= n {
        return s;
    }
    let (i, _) = s.char_indices().nth(count - n).expect("count > n");
    &s[i..]
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
        let no_driver = || Err::<Option<u64>, _>("cuMemGetInfo failed: no context".to_string());
        let m = gpu_memory(
            Err("NVML not available: libnvidia-ml.so not found".into()),
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
