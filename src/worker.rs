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

use crate::measure::{self, Progress, SamplerConfig, StopReason};
use crate::measure::{WarmupEnd, Workload};
use crate::model::bert::TextEncoder;
use crate::model::{error_text, synthetic_raw_input, Architecture, Network};
use crate::plan::Case;
use crate::probe::energy::{self, EnergyInfo, EnergyMethod, Rapl, RaplReading, Tdp};
use crate::probe::memory::{self, GpuMemory, MemoryInfo};
use crate::suite::Stage;
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
}

impl<W: Write> measure::Observer for WorkerObserver<'_, W> {
    fn progress(&mut self, p: &Progress) {
        send(self.out, &WorkerMessage::Progress(p.clone()));
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
        let window_s = self
            .window_start
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let inferences = (samples * self.batch_size) as u64;
        self.energy = Some(match &self.meter {
            Meter::Rapl { rapl, idle, start } => match (start, rapl.read()) {
                (Some(a), Ok(b)) => {
                    let mut info = EnergyInfo::new(
                        EnergyMethod::Rapl,
                        rapl.joules_between(a, &b),
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
                    let joules = b.saturating_sub(*a) as f64 / 1000.0;
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
                let cpu_s = energy::process_cpu_time_s() - start_cpu_s;
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
        encoder: Box<TextEncoder>,
    },
}

/// One inference as stages over prepared inputs; `stages` are the timed ones, in order.
struct Pipeline<'a> {
    net: &'a Network,
    device: &'a candle_core::Device,
    stages: Vec<Stage>,
    raw: RawInput,
    input: candle_core::Tensor,
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
                self.input = match &self.raw {
                    RawInput::Values(raw) => self.net.preprocess(raw)?,
                    RawInput::Text { sentences, encoder } => {
                        encoder.encode_tensor(sentences, self.device)?
                    }
                }
            }
            // Without the test-only slowdown nothing but the forward pass runs here: no
            // extra clock read inside the timed region.
            Stage::Forward => match self.slowdown {
                None => self.logits = Some(self.net.forward(&self.input)?),
                Some(f) => {
                    let started = Instant::now();
                    self.logits = Some(self.net.forward(&self.input)?);
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
                match &self.raw {
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

fn measure_case(req: &WorkerRequest, out: &mut impl Write) -> Result<Measurement, CaseError> {
    let case = &req.case;
    // Pin first: threads created from here on (rayon's, candle's) inherit the affinity.
    if let Some(cores) = &case.target.cores {
        crate::target::pin_to_cores(cores)
            .map_err(|e| format!("cannot pin to cores {cores:?}: {e}"))?;
    }
    let rss_before_load = memory::rss_bytes("self").unwrap_or(0);
    let device = open_device(&case.target)?;
    let built = Instant::now();
    let net = Network::build(&case.arch, &case.weights, &device).map_err(|e| e.to_string())?;
    let build_s = built.elapsed().as_secs_f64();
    let rss_after_load = memory::rss_bytes("self").unwrap_or(0);
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
    let raw = match (&case.text, &case.arch) {
        (Some(text), Architecture::Bert { seq_len, .. }) => {
            let encoder =
                TextEncoder::from_file(&text.tokenizer, *seq_len).map_err(|e| e.to_string())?;
            let all =
                crate::data::text::load_sentences(&text.sentences).map_err(|e| e.to_string())?;
            // The batch: the sentences in order, repeated when the batch is larger.
            let sentences = (0..case.batch_size)
                .map(|i| all[i % all.len()].clone())
                .collect();
            RawInput::Text {
                sentences,
                encoder: Box::new(encoder),
            }
        }
        (None, Architecture::Bert { .. }) => {
            return Err("a bert case needs its text inputs (tokenizer and sentences)".into())
        }
        _ => RawInput::Values(
            synthetic_raw_input(
                &raw_shape,
                case.batch_size,
                case.settings.seed ^ 0x1a2b_3c4d,
                &device,
            )
            .map_err(|e| format!("cannot build the input batch: {}", error_text(&e)))?,
        ),
    };
    let input = match &raw {
        RawInput::Values(raw) => net.preprocess(raw),
        RawInput::Text { sentences, encoder } => encoder.encode_tensor(sentences, &device),
    }
    .map_err(|e| format!("cannot preprocess the input batch: {}", error_text(&e)))?;
    let mut pipeline = Pipeline {
        net: &net,
        device: &device,
        stages: case.settings.timed.clone(),
        raw,
        input,
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
    };
    let sampled = measure::sample(&mut pipeline, &cfg, &mut observer)
        .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
    // An energy reading that failed is reported as absent, not as zero.
    let energy = observer.energy.take().and_then(Result::ok);

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
        DeviceKind::Cuda(index) => energy::nvml::Gpu::open(index)
            .and_then(|g| g.memory())
            .ok()
            .map(|m| GpuMemory {
                process_used_bytes: m.process_used,
                device_used_bytes: m.device_used,
                device_total_bytes: m.device_total,
            }),
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
    })
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
pub fn run_in_worker(
    case: &Case,
    fault: Option<Fault>,
    slowdown: Option<f64>,
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
}
