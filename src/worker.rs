//! The isolated worker: every case runs in a fresh child process of this binary.
//!
//! Protocol: the parent starts `inferbench __worker` with the target's thread variables set,
//! writes one JSON `WorkerRequest` to its stdin and closes it. The worker answers on stdout
//! with JSON lines: any number of `progress` messages, then one `done` (the measurement) or
//! `error`. A crash, a non-zero exit, a missing answer or the case timeout make the case
//! `failed` with the reason; the parent never waits longer than the timeout.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::{self, Progress, SamplerConfig, StopReason};
use crate::model::{error_text, synthetic_input, Network};
use crate::plan::Case;

/// The hidden subcommand that runs one case.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// Test-only faults (hidden `run --inject-fault`), to prove a broken case cannot sink a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Abort the worker process after the model is built (as a segfault or OOM kill would).
    Crash,
    /// Stop making progress after the model is built, so the parent's timeout must fire.
    Hang,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRequest {
    pub case: Case,
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    Progress(Progress),
    Done(Measurement),
    Error { message: String },
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
}

/// Entry point of the hidden subcommand. Returns the process exit code.
pub fn worker_main() -> i32 {
    let mut input = String::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the request: {e}"))
        .and_then(|_| {
            serde_json::from_str::<WorkerRequest>(&input).map_err(|e| format!("bad request: {e}"))
        })
        .and_then(|req| measure_case(&req, &mut out));
    let (message, code) = match result {
        Ok(m) => (WorkerMessage::Done(m), 0),
        Err(message) => (WorkerMessage::Error { message }, 1),
    };
    send(&mut out, &message);
    code
}

fn send(out: &mut impl Write, message: &WorkerMessage) {
    // A parent that went away cannot be told anything; the worker simply ends.
    if let Ok(line) = serde_json::to_string(message) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

struct StdoutProgress<'a, W: Write>(&'a mut W);

impl<W: Write> measure::Observer for StdoutProgress<'_, W> {
    fn progress(&mut self, p: &Progress) {
        send(self.0, &WorkerMessage::Progress(p.clone()));
    }
}

fn measure_case(req: &WorkerRequest, out: &mut impl Write) -> Result<Measurement, String> {
    let case = &req.case;
    let device = case
        .target
        .candle_device()
        .map_err(|e| format!("device {}: {}", case.target.device, error_text(&e)))?;
    let built = Instant::now();
    let net = Network::build(&case.arch, &case.weights, &device).map_err(|e| e.to_string())?;
    let build_s = built.elapsed().as_secs_f64();
    match req.fault {
        Some(Fault::Crash) => std::process::abort(),
        Some(Fault::Hang) => loop {
            std::thread::park();
        },
        None => {}
    }
    // Inputs are prepared before timing; only the forward pass and the device sync are timed.
    let input = synthetic_input(
        &case.arch,
        case.batch_size,
        case.settings.seed ^ 0x1a2b_3c4d,
        net.dtype(),
        &device,
    )
    .map_err(|e| format!("cannot build the input batch: {}", error_text(&e)))?;
    let mut forward = || -> candle_core::Result<()> {
        let logits = net.forward(&input)?;
        device.synchronize()?;
        drop(logits);
        Ok(())
    };
    let cfg = SamplerConfig::from(&case.settings);
    let clock_overhead_ns = measure::clock_overhead_ns();
    let sampled = measure::sample(&mut forward, &cfg, &mut StdoutProgress(out))
        .map_err(|e| format!("forward pass failed: {}", error_text(&e)))?;
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
        },
        params: net.params(),
        weight_bytes: net.weight_bytes(),
        flops_per_sample: case.arch.flops_per_sample(),
        clock_overhead_ns,
        build_s,
    })
}

/// How a case ended, seen from the parent.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured(Box<Measurement>),
    Failed(String),
}

enum Event {
    Line(String),
    Closed,
}

/// Runs `case` in a fresh worker process, forwarding its progress, enforcing the timeout.
pub fn run_in_worker(
    case: &Case,
    fault: Option<Fault>,
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
    let mut child = match Command::new(&exe)
        .arg(WORKER_SUBCOMMAND)
        .envs(case.target.worker_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Outcome::Failed(format!("cannot start a worker ({}): {e}", exe.display()))
        }
    };
    let request = WorkerRequest {
        case: case.clone(),
        fault,
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
    let mut answer: Option<Result<Measurement, String>> = None;
    let mut unreadable: Option<String> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Line(line)) => match serde_json::from_str::<WorkerMessage>(&line) {
                Ok(WorkerMessage::Progress(p)) => on_progress(&p),
                Ok(WorkerMessage::Done(m)) => answer = Some(Ok(m)),
                Ok(WorkerMessage::Error { message }) => answer = Some(Err(message)),
                Err(e) => {
                    unreadable = Some(format!(
                        "unreadable worker output ({e}): {}",
                        truncate(&line, 200)
                    ))
                }
            },
            Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
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
