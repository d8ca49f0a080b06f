//! The parent side: starts a worker process for a case, forwards its progress, enforces the
//! timeout and the memory limit, and turns its answer or its end into an `Outcome`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::protocol::{
    EnergySetup, Fault, Measurement, ProfileRequest, WorkerMessage, WorkerRequest, PARENT_PID_ENV,
    WORKER_SUBCOMMAND,
};
use crate::measure::Progress;
use crate::plan::Case;
use crate::probe::memory;

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
    let request = WorkerRequest {
        case: case.clone(),
        fault,
        energy: energy.clone(),
        slowdown,
        profile,
    };
    let Worker {
        mut child,
        lines,
        stderr,
    } = match Worker::start(case, &request) {
        Ok(worker) => worker,
        Err(message) => return Outcome::Failed(message),
    };
    let timeout = Duration::from_secs_f64(case.settings.case_timeout_s);
    let deadline = Instant::now() + timeout;
    let said = match watch(
        &mut child,
        &lines,
        case,
        interrupted,
        (timeout, deadline),
        on_progress,
    ) {
        Ok(said) => said,
        Err(outcome) => return outcome,
    };
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
    let stderr_text = stderr.join().unwrap_or_default();
    said.outcome(status, &stderr_text)
}

/// A worker process just started: its stdout as lines on a channel, its stderr collected by
/// a thread.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<Event>,
    stderr: JoinHandle<String>,
}

impl Worker {
    /// Starts the worker in its own process group and hands it the request.
    fn start(case: &Case, request: &WorkerRequest) -> Result<Worker, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot locate the inferbench binary to start a worker: {e}"))?;
        let mut command = Command::new(&exe);
        command
            .arg(WORKER_SUBCOMMAND)
            .envs(case.target.worker_env())
            .env(PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start a worker ({}): {e}", exe.display()))?;
        let request = serde_json::to_vec(request).expect("requests are plain data");
        if let Some(mut stdin) = child.stdin.take() {
            // A worker that died at once is reported through its exit status below.
            let _ = stdin.write_all(&request);
        }

        let (tx, lines) = mpsc::channel();
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
        let stderr = std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = stderr.read_to_string(&mut buf);
            buf
        });
        Ok(Worker {
            child,
            lines,
            stderr,
        })
    }
}

/// What the worker said before closing its stdout.
#[derive(Default)]
struct Said {
    answer: Option<Result<Measurement, String>>,
    unavailable: Option<String>,
    unreadable: Option<String>,
}

impl Said {
    /// The outcome of a worker that closed its stdout and ended with `status`.
    fn outcome(self, status: Option<ExitStatus>, stderr_text: &str) -> Outcome {
        if let Some(reason) = self.unavailable {
            return Outcome::Unavailable(reason);
        }
        match (self.answer, status) {
            (Some(Ok(m)), Some(s)) if s.success() => Outcome::Measured(Box::new(m)),
            (Some(Err(message)), _) => Outcome::Failed(message),
            (_, status) => {
                let how = status
                    .map(describe_exit)
                    .unwrap_or_else(|| "the worker could not be waited for".into());
                let mut reason = format!("worker {how}");
                if let Some(u) = self.unreadable {
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
}

/// Reads the worker's messages until it closes its stdout, forwarding progress. The worker
/// is stopped, with the outcome as the error, when the run is interrupted, when it goes over
/// its memory limit, or at the deadline.
fn watch(
    child: &mut Child,
    lines: &mpsc::Receiver<Event>,
    case: &Case,
    interrupted: &AtomicBool,
    (timeout, deadline): (Duration, Instant),
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Said, Outcome> {
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
    let mut said = Said::default();
    loop {
        if interrupted.load(Ordering::SeqCst) {
            stop(child);
            return Err(Outcome::Interrupted);
        }
        if let (Some(limit), Some(rss)) =
            (rss_limit, rss_limit.and_then(|_| memory::rss_bytes(&pid)))
        {
            if rss > limit {
                stop(child);
                return Err(Outcome::Failed(format!(
                    "memory limit: the worker's RSS reached {:.1} MiB, above {rss_limit_from} = {}; it was stopped",
                    rss as f64 / (1 << 20) as f64,
                    limit / (1024 * 1024)
                )));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left.min(poll)) {
            Ok(Event::Line(line)) => match serde_json::from_str::<WorkerMessage>(&line) {
                Ok(WorkerMessage::Progress(p)) => on_progress(&p),
                Ok(WorkerMessage::Done(m)) => said.answer = Some(Ok(*m)),
                Ok(WorkerMessage::Error { message }) => said.answer = Some(Err(message)),
                Ok(WorkerMessage::Unavailable { reason }) => said.unavailable = Some(reason),
                Err(e) => {
                    said.unreadable = Some(format!(
                        "unreadable worker output ({e}): {}",
                        truncate(&line, 200)
                    ))
                }
            },
            Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(said),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop(child);
                return Err(Outcome::Failed(format!(
                    "timed out after {:.1} s (settings.case_timeout_s); the worker was killed",
                    timeout.as_secs_f64()
                )));
            }
        }
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
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
