//! A run that is killed, interrupted, or holds a worker that uses too much memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use inferbench::results::{self, journal};
use inferbench::schema::{CaseStatus, RunStatus};

mod support;
use support::text;

fn bin() -> Command {
    support::command()
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

/// Six small cases, each sampling for about half a second, so a run lasts a few seconds.
const SUITE: &str = r#"
[suite]
name = "slowish"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 64
hidden = [64]
classes = 4
[[targets]]
device = "cpu"
threads = [1, 2]
[scenarios.single_stream]
[scenarios.offline]
batch_sizes = [1, 8]
[settings]
warmup_s = 0.05
min_time_s = 0.5
max_time_s = 0.5
max_noise = 0.0001
idle_power_s = 0
"#;

fn setup(body: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.toml");
    std::fs::write(&suite, body).unwrap();
    let out = dir.path().join("run.json");
    (dir, suite, out)
}

fn spawn_run(suite: &Path, out: &Path) -> Child {
    bin()
        .args([
            "run",
            suite.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the journal holds at least `n` finished cases.
fn wait_for_cases(journal_file: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cases = std::fs::read_to_string(journal_file)
            .map(|t| t.matches("\"type\":\"case\"").count())
            .unwrap_or(0);
        if cases >= n {
            return;
        }
        assert!(Instant::now() < deadline, "the run never reached {n} cases");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_run_resumes_and_ends_with_every_case_once() {
    let (_dir, suite, out) = setup(SUITE);
    let journal_file = journal::journal_path(&out);
    let mut child = spawn_run(&suite, &out);
    wait_for_cases(&journal_file, 2);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(!out.exists(), "a killed run leaves only its journal");
    let loaded = journal::load(&journal_file).unwrap();
    assert!(loaded.cases.len() >= 2 && loaded.cases.len() < 6);

    let resumed = output(bin().args(["run", "--resume", journal_file.to_str().unwrap()]));
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let run = results::read_json(&out).unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    let listed = text(&output(bin().args(["list", suite.to_str().unwrap()])).stdout);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(unique.len(), 6, "every case once: {ids:?}");
    assert!(ids.iter().all(|id| listed.contains(id)));
    // The cases measured before the kill are the journal's, unchanged.
    for before in &loaded.cases {
        assert!(run.cases.contains(before), "{} was re-measured", before.id);
    }
    assert!(
        !journal_file.exists(),
        "the journal is removed once the run is complete"
    );
}

#[test]
fn sigint_writes_an_interrupted_run_and_exits_130() {
    let (_dir, suite, out) = setup(SUITE);
    let journal_file = journal::journal_path(&out);
    let child = spawn_run(&suite, &out);
    wait_for_cases(&journal_file, 1);
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{}", text(&done.stderr));
    assert!(text(&done.stderr).contains("--resume"));
    let run = results::read_json(&out).unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(!run.cases.is_empty() && run.cases.len() < 6);
    assert!(
        run.cases.iter().all(|c| c.status != CaseStatus::Failed),
        "the case in flight is abandoned, not failed"
    );
    assert!(journal_file.exists(), "the journal stays for --resume");
    // And the rest can be finished.
    let resumed = output(bin().args(["run", "--resume", journal_file.to_str().unwrap()]));
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(results::read_json(&out).unwrap().cases.len(), 6);
}

#[test]
fn a_worker_over_max_rss_mb_fails_with_that_reason_and_the_others_finish() {
    // A 4096x4096 + 4096x4096 MLP holds 128 MiB of weights: far above a 64 MiB cap. The
    // small model's cases stay well under it.
    let body = r#"
[suite]
name = "memcap"
[[models]]
name = "big"
arch = "mlp"
input_size = 4096
hidden = [4096]
classes = 4096
[[models]]
name = "small"
arch = "mlp"
input_size = 16
hidden = [8]
classes = 2
[[targets]]
device = "cpu"
[scenarios.single_stream]
[settings]
max_rss_mb = 64
idle_power_s = 0
"#;
    let (_dir, suite, out) = setup(body);
    let done = output(bin().args([
        "run",
        suite.to_str().unwrap(),
        "--quick",
        "--output",
        out.to_str().unwrap(),
    ]));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let run = results::read_json(&out).unwrap();
    let big = run.cases.iter().find(|c| c.model_name == "big").unwrap();
    assert_eq!(big.status, CaseStatus::Failed);
    let why = big.error.as_deref().unwrap();
    assert!(
        why.starts_with("memory limit") && why.contains("max_rss_mb = 64"),
        "{why}"
    );
    let small = run.cases.iter().find(|c| c.model_name == "small").unwrap();
    assert!(
        matches!(small.status, CaseStatus::Ok | CaseStatus::Noisy),
        "{:?}",
        small.error
    );
    let mem = small.memory.as_ref().unwrap();
    assert!(mem.peak_rss_bytes >= mem.rss_before_load_bytes && mem.peak_rss_bytes < 64 << 20);
}

#[test]
fn a_corrupt_journal_or_changed_suite_is_refused_with_exit_2() {
    let (dir, suite, out) = setup(SUITE);
    let journal_file = journal::journal_path(&out);
    std::fs::write(&journal_file, "{\"type\":\"header\"}\n").unwrap();
    let done = output(bin().args(["run", "--resume", journal_file.to_str().unwrap()]));
    assert_eq!(done.status.code(), Some(2));
    let stderr = text(&done.stderr);
    assert!(
        stderr.contains("line 1") && stderr.contains(journal_file.to_str().unwrap()),
        "{stderr}"
    );

    // A fresh run will not overwrite an unfinished run's journal.
    let done = output(bin().args([
        "run",
        suite.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]));
    assert_eq!(done.status.code(), Some(2));
    assert!(text(&done.stderr).contains("unfinished run"));
    std::fs::remove_file(&journal_file).unwrap();

    // Interrupt a run, then change the suite: resuming would mix two suites.
    let child = spawn_run(&suite, &out);
    wait_for_cases(&journal_file, 1);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait_with_output().unwrap();
    std::fs::write(&suite, SUITE.replace("hidden = [64]", "hidden = [32]")).unwrap();
    let done = output(bin().args(["run", "--resume", journal_file.to_str().unwrap()]));
    assert_eq!(done.status.code(), Some(2));
    assert!(
        text(&done.stderr).contains("changed since the run"),
        "{}",
        text(&done.stderr)
    );
    drop(dir);
}

#[test]
fn processes_run_in_rounds_are_journaled_one_by_one_and_resume() {
    let body = SUITE.replace("threads = [1, 2]", "threads = [1]").replace(
        "idle_power_s = 0",
        "idle_power_s = 0\nprocesses = 3\nmin_time_s = 0.2\nmax_time_s = 0.2",
    );
    let body = body.replacen("min_time_s = 0.5\nmax_time_s = 0.5\n", "", 1);
    let (_dir, suite, out) = setup(&body);
    let journal_file = journal::journal_path(&out);
    let mut child = spawn_run(&suite, &out);
    // Three cases, three processes each: in rounds, the first three process lines are one
    // process of each case.
    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let text = std::fs::read_to_string(&journal_file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["type"] == "process")
            .collect();
        if lines.len() >= 4 {
            break lines;
        }
        assert!(Instant::now() < deadline, "no process lines in the journal");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let first_round: Vec<&str> = lines[..3]
        .iter()
        .map(|v| v["case_id"].as_str().unwrap())
        .collect();
    let mut distinct = first_round.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        3,
        "round 1 is one process of each case: {first_round:?}"
    );
    let loaded = journal::load(&journal_file).unwrap();
    let journaled: Vec<f64> = loaded
        .processes
        .values()
        .flatten()
        .map(|m| m.measured_s)
        .collect();
    assert!(journaled.len() >= 4, "{journaled:?}");

    let resumed = output(bin().args(["run", "--resume", journal_file.to_str().unwrap()]));
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let run = results::read_json(&out).unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.cases.len(), 3);
    let mut kept = Vec::new();
    for case in &run.cases {
        let p = case.processes.as_ref().expect("per-process figures");
        assert_eq!(p.len(), 3, "{}: every case has its 3 processes", case.id);
        assert_eq!(p.reference_us.len(), 3, "a reference time per process");
        assert!(p.reference_us.iter().all(|r| r.is_finite() && *r > 0.0));
        kept.extend(p.measured_s.iter().copied());
    }
    // Processes measured before the kill are kept, not measured again.
    for m in &journaled {
        assert!(kept.contains(m), "journaled process {m} was lost");
    }
}
