//! How much the scheduler kept a worker off its CPU: per thread, the time spent waiting on a
//! run queue while runnable (`/proc/self/task/<tid>/schedstat`, second field) and the
//! involuntary context switches (`nonvoluntary_ctxt_switches` in `.../status`).
//!
//! The reference kernel (`measure::reference`) sees a slow core, but it runs for a few
//! milliseconds between chunks: another busy process on the same core (a compiler) preempts
//! the worker in scheduler slices that fall between those readings, so the kernel's median
//! is unmoved while the model's window was not. The kernel's own accounting cannot miss
//! them: every nanosecond a thread of the worker was runnable but not running is counted.
//! The worker reads these counters at its measured window's edges and between chunks
//! (outside the timed chunks: reading /proc allocates and makes system calls), and `check`
//! counts a process as undisturbed only if its run-queue share is small (docs/check.md).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One thread's scheduler counters, as read from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCounters {
    pub tid: u32,
    /// Time on a CPU, ns (schedstat's first field).
    pub on_cpu_ns: u64,
    /// Time runnable but waiting on a run queue, ns (schedstat's second field).
    pub wait_ns: u64,
    /// Involuntary context switches (preempted while runnable).
    pub involuntary: u64,
}

/// `run_ns wait_ns timeslices` of a schedstat file: the first two fields.
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_ascii_whitespace();
    let on_cpu = fields.next()?.parse().ok()?;
    let wait = fields.next()?.parse().ok()?;
    Some((on_cpu, wait))
}

/// The `nonvoluntary_ctxt_switches` line of a /proc status file.
pub fn parse_involuntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Every thread of this process now; an error where /proc has no schedstat (not Linux, or a
/// kernel without CONFIG_SCHED_INFO).
pub fn read_threads() -> Result<Vec<ThreadCounters>, String> {
    read_threads_in(Path::new("/proc/self/task"))
}

fn read_threads_in(tasks: &Path) -> Result<Vec<ThreadCounters>, String> {
    let entries =
        std::fs::read_dir(tasks).map_err(|e| format!("cannot list {}: {e}", tasks.display()))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        // A thread that ended between the listing and the read is simply left out.
        let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) else {
            continue;
        };
        let (on_cpu_ns, wait_ns) = parse_schedstat(&stat)
            .ok_or_else(|| format!("{}: unexpected schedstat `{}`", dir.display(), stat.trim()))?;
        let involuntary = std::fs::read_to_string(dir.join("status"))
            .ok()
            .and_then(|s| parse_involuntary_switches(&s))
            .unwrap_or(0);
        out.push(ThreadCounters {
            tid,
            on_cpu_ns,
            wait_ns,
            involuntary,
        });
    }
    if out.is_empty() {
        return Err(format!("no thread's schedstat under {}", tasks.display()));
    }
    Ok(out)
}

/// Scheduler counts summed over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedCounts {
    /// Time on a CPU.
    pub on_cpu_s: f64,
    /// Time runnable but waiting on a run queue.
    pub run_queue_wait_s: f64,
    pub involuntary_switches: u64,
}

impl SchedCounts {
    /// The share of the runnable time (on a CPU or waiting for one) spent waiting: 0 on a
    /// core of its own, about 0.5 beside one other busy thread on its core.
    pub fn run_queue_share(&self) -> f64 {
        let runnable = self.on_cpu_s + self.run_queue_wait_s;
        if runnable > 0.0 {
            self.run_queue_wait_s / runnable
        } else {
            0.0
        }
    }

    fn add(&mut self, on_cpu_ns: u64, wait_ns: u64, involuntary: u64) {
        self.on_cpu_s += on_cpu_ns as f64 / 1e9;
        self.run_queue_wait_s += wait_ns as f64 / 1e9;
        self.involuntary_switches += involuntary;
    }
}

/// What the scheduler did to a worker over its measured window.
///
/// The disturbance signal is [`SchedFigures::run_queue_share`]. Two views feed it:
/// - the main thread (the one that runs the timed loop): the share of its runnable time it
///   spent waiting on a run queue;
/// - for a worker pinned to one core, that core's time lost to other work: one minus the
///   worker's CPU time (all threads, from the process CPU clock) over the window. The main
///   thread alone misses preemption of a compute pool's thread while the main thread waits
///   on it (measured: a one-thread CNN beside two busy loops lost 60% of its core while its
///   main thread waited 13% of its runnable time).
///
/// The run-queue wait of all threads together is kept for diagnosis only: a compute pool's
/// idle threads spin and yield, so beside the main thread on a shared core they sit on the
/// run queue by design (measured: 20 to 45% of the runnable time of a one-thread CNN worker
/// pinned to an otherwise idle core), which says nothing about other processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedFigures {
    /// Wall time from the first reading to the last.
    pub window_s: f64,
    pub main_thread: SchedCounts,
    pub all_threads: SchedCounts,
    /// CPU time of the whole worker over the window (process CPU clock: exact, unlike the
    /// per-thread counters, which lag by up to a scheduler tick).
    pub process_cpu_s: f64,
    /// The worker could run on one core only: its CPU time then measures what it got of it.
    pub one_core: bool,
    /// Readings taken (the window's two edges and one between chunks per progress report).
    pub readings: usize,
}

impl SchedFigures {
    /// The share of the window the worker was kept off its CPU by other work: the main
    /// thread's run-queue share, or, pinned to one core, the core's time lost to other work
    /// when that is larger. 0 on a core of its own.
    pub fn run_queue_share(&self) -> f64 {
        let main = self.main_thread.run_queue_share();
        if self.one_core && self.window_s > 0.0 {
            let lost = (1.0 - self.process_cpu_s / self.window_s).clamp(0.0, 1.0);
            main.max(lost)
        } else {
            main
        }
    }

    /// The main thread's involuntary context switches per second of the window.
    pub fn involuntary_per_s(&self) -> f64 {
        if self.window_s > 0.0 {
            self.main_thread.involuntary_switches as f64 / self.window_s
        } else {
            f64::NAN
        }
    }
}

/// One reading of the worker: every thread's counters, and the process CPU clock (s).
pub struct SchedReading {
    pub threads: Result<Vec<ThreadCounters>, String>,
    pub process_cpu_s: f64,
}

impl SchedReading {
    /// This process now.
    pub fn now() -> Self {
        SchedReading {
            threads: read_threads(),
            process_cpu_s: super::energy::process_cpu_time_s(),
        }
    }
}

/// Sums the counters' growth over successive readings of a window.
#[derive(Debug)]
pub struct SchedWindow {
    main_tid: u32,
    last: Vec<ThreadCounters>,
    main_thread: SchedCounts,
    all_threads: SchedCounts,
    /// The process CPU clock at the first and the last reading.
    process_cpu_s: [f64; 2],
    readings: usize,
    /// The first reading failed: the window has no figures.
    failed: bool,
}

impl SchedWindow {
    /// A window of the process whose main thread is `main_tid` (its pid).
    pub fn new(main_tid: u32) -> Self {
        SchedWindow {
            main_tid,
            last: Vec::new(),
            main_thread: SchedCounts::default(),
            all_threads: SchedCounts::default(),
            process_cpu_s: [f64::NAN; 2],
            readings: 0,
            failed: false,
        }
    }

    /// A window of this process.
    pub fn of_this_process() -> Self {
        SchedWindow::new(std::process::id())
    }

    /// Adds a reading: the growth since the previous one of each thread seen then, and the
    /// whole counts of a thread started since (all of its life lies after that reading). A
    /// thread that ended between two readings takes its last interval with it.
    pub fn add(&mut self, reading: SchedReading) {
        let Ok(now) = reading.threads else {
            if self.readings == 0 {
                self.failed = true;
            }
            return;
        };
        if self.readings > 0 {
            for t in &now {
                let before = self.last.iter().find(|p| p.tid == t.tid);
                let (c, w, i) = match before {
                    Some(p) => (
                        t.on_cpu_ns.saturating_sub(p.on_cpu_ns),
                        t.wait_ns.saturating_sub(p.wait_ns),
                        t.involuntary.saturating_sub(p.involuntary),
                    ),
                    None => (t.on_cpu_ns, t.wait_ns, t.involuntary),
                };
                self.all_threads.add(c, w, i);
                if t.tid == self.main_tid {
                    self.main_thread.add(c, w, i);
                }
            }
        } else {
            self.process_cpu_s[0] = reading.process_cpu_s;
        }
        self.process_cpu_s[1] = reading.process_cpu_s;
        self.last = now;
        self.readings += 1;
    }

    /// The window's figures, over `window_s` of wall time, for a worker that could run on
    /// one core only (`one_core`) or more; `None` without two readings that saw the main
    /// thread.
    pub fn figures(&self, window_s: f64, one_core: bool) -> Option<SchedFigures> {
        let main_seen = self.last.iter().any(|t| t.tid == self.main_tid);
        let cpu = self.process_cpu_s[1] - self.process_cpu_s[0];
        (!self.failed && self.readings >= 2 && main_seen).then_some(SchedFigures {
            window_s,
            main_thread: self.main_thread,
            all_threads: self.all_threads,
            process_cpu_s: cpu,
            // Without a process clock, the core's share cannot be told.
            one_core: one_core && cpu.is_finite(),
            readings: self.readings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_and_status_are_parsed() {
        assert_eq!(
            parse_schedstat("5230188 17436 3\n"),
            Some((5_230_188, 17_436))
        );
        assert_eq!(parse_schedstat("12 x 3"), None);
        assert_eq!(parse_schedstat(""), None);
        let status = "Name:\tinferbench\nState:\tR (running)\nvoluntary_ctxt_switches:\t41\nnonvoluntary_ctxt_switches:\t  7\n";
        assert_eq!(parse_involuntary_switches(status), Some(7));
        assert_eq!(parse_involuntary_switches("Name:\tx\n"), None);
    }

    fn t(tid: u32, on_cpu_ns: u64, wait_ns: u64, involuntary: u64) -> ThreadCounters {
        ThreadCounters {
            tid,
            on_cpu_ns,
            wait_ns,
            involuntary,
        }
    }

    fn reading(threads: Vec<ThreadCounters>) -> SchedReading {
        let cpu = threads.iter().map(|t| t.on_cpu_ns).sum::<u64>() as f64 / 1e9;
        SchedReading {
            threads: Ok(threads),
            process_cpu_s: cpu,
        }
    }

    fn failed_clock(threads: Vec<ThreadCounters>) -> SchedReading {
        SchedReading {
            threads: Ok(threads),
            process_cpu_s: f64::NAN,
        }
    }

    fn failed(why: &str) -> SchedReading {
        SchedReading {
            threads: Err(why.to_string()),
            process_cpu_s: f64::NAN,
        }
    }

    #[test]
    fn the_window_sums_growth_per_thread_and_counts_new_threads_whole() {
        let mut w = SchedWindow::new(1);
        w.add(reading(vec![t(1, 1_000, 500, 2)]));
        assert_eq!(w.figures(0.0, false), None, "one reading is no window");
        // Thread 1 runs 3 ms and waits 1 ms; thread 2 appears with 1 ms run, 1 ms wait.
        w.add(reading(vec![
            t(1, 3_001_000, 1_000_500, 5),
            t(2, 1_000_000, 1_000_000, 1),
        ]));
        // A failed reading in between changes nothing.
        w.add(failed("gone"));
        // Thread 2 ended; thread 1 runs 4 ms more without waiting.
        w.add(reading(vec![t(1, 7_001_000, 1_000_500, 5)]));
        let f = w.figures(0.01, false).unwrap();
        assert_eq!(f.readings, 3);
        let all = f.all_threads;
        assert!((all.on_cpu_s - 0.008).abs() < 1e-12, "{f:?}");
        assert!((all.run_queue_wait_s - 0.002).abs() < 1e-12, "{f:?}");
        assert_eq!(all.involuntary_switches, 4);
        assert!((all.run_queue_share() - 0.2).abs() < 1e-12);
        // The main thread alone: 7 ms on the CPU, 1 ms waiting, 3 switches.
        let main = f.main_thread;
        assert!((main.on_cpu_s - 0.007).abs() < 1e-12, "{f:?}");
        assert!((f.run_queue_share() - 0.125).abs() < 1e-12);
        assert!((f.involuntary_per_s() - 300.0).abs() < 1e-9);
        // Pinned to one core: the process clock moved 7 ms (first to last reading) in the
        // 10 ms window, so 30% of the core went to other work, more than the main thread's
        // own wait shows.
        let pinned = w.figures(0.01, true).unwrap();
        assert!((pinned.process_cpu_s - 0.007).abs() < 1e-12, "{pinned:?}");
        assert!((pinned.run_queue_share() - 0.3).abs() < 1e-9);
        // Whichever view is larger wins.
        let busy_core = SchedFigures {
            process_cpu_s: 0.0099,
            ..pinned
        };
        assert!((busy_core.run_queue_share() - 0.125).abs() < 1e-9);
        // Without a process clock the core's share is not used.
        let mut no_clock = SchedWindow::new(1);
        no_clock.add(failed_clock(vec![t(1, 0, 0, 0)]));
        no_clock.add(failed_clock(vec![t(1, 1_000, 1_000, 0)]));
        assert!(!no_clock.figures(1.0, true).unwrap().one_core);
    }

    #[test]
    fn a_window_that_never_saw_its_main_thread_has_no_figures() {
        let mut w = SchedWindow::new(7);
        w.add(reading(vec![t(1, 10, 0, 0)]));
        w.add(reading(vec![t(1, 20, 0, 0)]));
        assert_eq!(w.figures(1.0, false), None);
    }

    #[test]
    fn a_window_whose_first_reading_failed_has_no_figures() {
        let mut w = SchedWindow::new(1);
        w.add(failed("no /proc"));
        w.add(reading(vec![t(1, 10, 0, 0)]));
        w.add(reading(vec![t(1, 20, 0, 0)]));
        assert_eq!(w.figures(1.0, false), None);
    }

    #[test]
    fn an_idle_window_has_no_share() {
        let f = SchedFigures::default();
        assert_eq!(f.all_threads.run_queue_share(), 0.0);
        assert_eq!(f.run_queue_share(), 0.0);
        assert!(f.involuntary_per_s().is_nan());
    }

    /// This thread's counters can be read here (Linux CI), and a busy thread's on-CPU time
    /// grows between two readings.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_threads_can_be_read() {
        let before = read_threads().expect("schedstat readable");
        let mut acc = 0u64;
        for i in 0..2_000_000u64 {
            acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
        let after = read_threads().expect("schedstat readable");
        let me = |v: &[ThreadCounters]| {
            let tid = unsafe { libc::gettid() } as u32;
            v.iter()
                .find(|t| t.tid == tid)
                .copied()
                .expect("this thread")
        };
        assert!(me(&after).on_cpu_ns > me(&before).on_cpu_ns);
    }

    #[test]
    fn a_folder_of_fake_tasks_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for (tid, stat, status) in [
            ("101", "900 100 4\n", "nonvoluntary_ctxt_switches:\t3\n"),
            ("102", "50 50 1\n", "Name:\tx\n"),
        ] {
            let d = dir.path().join(tid);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("schedstat"), stat).unwrap();
            std::fs::write(d.join("status"), status).unwrap();
        }
        let mut v = read_threads_in(dir.path()).unwrap();
        v.sort_by_key(|t| t.tid);
        assert_eq!(v, vec![t(101, 900, 100, 3), t(102, 50, 50, 0)]);
        assert!(read_threads_in(&dir.path().join("none")).is_err());
    }
}
