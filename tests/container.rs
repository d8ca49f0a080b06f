//! inferbench in a container: as PID 1 of a new PID namespace (what `docker run` without
//! `--init` gives it), every case must still run; and a worker whose parent is not the one
//! that started it exits at once.
//!
//! The namespace comes from `unshare --pid --fork --mount-proc` (util-linux), which needs root
//! or user namespaces. Where the machine allows neither, the test says why and passes, unless
//! `INFERBENCH_REQUIRE_PID_NAMESPACE=1` (set by `.ci/run` under CI=true: CI runs as root on
//! the same kind of machine as development, so there it must run).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use inferbench::schema::CaseStatus;
use support::text;

const SUITE: &str = r#"
[suite]
name = "container"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 16
hidden = [8]
classes = 2
[[targets]]
device = "cpu"
threads = [1]
[scenarios.single_stream]
[settings]
warmup_s = 0.01
max_warmup_s = 0.05
min_time_s = 0.05
max_time_s = 0.1
idle_power_s = 0
case_timeout_s = 30
processes = 2
"#;

/// Whether `unshare` can make a PID namespace here; `Err` says why not.
fn pid_namespace_available() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("PID namespaces are Linux only".into());
    }
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .map_err(|e| format!("cannot run `unshare` (util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`unshare --pid --fork --mount-proc true` failed ({}): {}",
            out.status,
            text(&out.stderr).trim()
        ))
    }
}

#[test]
fn a_run_as_pid_1_of_a_pid_namespace_measures_every_case() {
    if let Err(why) = pid_namespace_available() {
        assert!(
            std::env::var_os("INFERBENCH_REQUIRE_PID_NAMESPACE").is_none(),
            "INFERBENCH_REQUIRE_PID_NAMESPACE is set, but no PID namespace can be made: {why}"
        );
        eprintln!("SKIPPED: no PID namespace on this machine: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let out = dir.path().join("run.json");
    // `sh` is PID 1 of the new namespace and `exec` hands that PID to inferbench.
    let script = r#"echo "pid $$"; exec "$0" run "$1" --output "$2""#;
    let run = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", script])
        .arg(support::BIN)
        .arg(&suite)
        .arg(&out)
        .output()
        .expect("unshare runs");
    let stdout = text(&run.stdout);
    let stderr = text(&run.stderr);
    assert!(
        stdout.starts_with("pid 1\n"),
        "inferbench was not PID 1: {stdout}"
    );
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    let result = inferbench::results::read_json(&out).expect("a run file");
    assert_eq!(result.cases.len(), 1);
    for case in &result.cases {
        assert!(
            matches!(case.status, CaseStatus::Ok | CaseStatus::Noisy),
            "{}: {:?} {:?}",
            case.id,
            case.status,
            case.error
        );
        let processes = case.processes.as_ref().expect("two processes");
        assert_eq!(processes.len(), 2, "both workers measured");
    }
}

/// The worker hidden subcommand, started by hand as a parent would.
fn worker(parent_pid: u32) -> std::process::Output {
    let mut child = support::command()
        .arg(inferbench::worker::protocol::WORKER_SUBCOMMAND)
        .env("INFERBENCH_PARENT_PID", parent_pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Not a request: a worker that reads it answers with an error message.
    let _ = child.stdin.take().unwrap().write_all(b"not a request");
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn a_worker_whose_parent_is_another_process_exits_at_once() {
    // Its real parent is this test; told otherwise, it takes itself for an orphan.
    let orphan = worker(std::process::id() + 1);
    assert_eq!(orphan.status.code(), Some(1));
    assert_eq!(
        text(&orphan.stdout),
        "",
        "it exited before reading its request"
    );

    let adopted = worker(std::process::id());
    assert_eq!(adopted.status.code(), Some(1));
    assert!(
        text(&adopted.stdout).contains("bad request"),
        "it read its request: {}",
        text(&adopted.stdout)
    );
}
