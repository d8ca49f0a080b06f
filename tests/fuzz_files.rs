//! Every file inferbench reads is hostile input: a fuzzer over real run files and a journal.
//!
//! Each mutation changes one thing in a real file: truncates it, deletes a field or list
//! item, sets a number to 0, -1, 1e308, 2^64 and the like, writes `NaN` or `Infinity`, puts a
//! value of the wrong type, empties a list or makes it long, duplicates a case. Then the
//! commands that read such files run on it: `check` (the mutation as candidate, and as
//! baseline), `export`, `merge` and `report` on run files, the journal loader and
//! `run --resume` on journals. Each must answer with exit 0, 1 or 2, never a panic (exit 101)
//! or a hang.
//!
//! Most mutations run in this process through `inferbench::cli::run_args`, the code the
//! binary runs (a panic is caught, a call that takes over `CALL_LIMIT` aborts the test with
//! its mutation); a sample runs through the real binary. The mutations are seeded:
//! `INFERBENCH_FUZZ_SEED=N` picks others and `INFERBENCH_FUZZ_MUTATIONS=N` changes how many
//! (a failure prints both).

mod support;

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The longest one in-process command may take before the test calls it a hang.
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// The longest one run of the binary may take.
const PROCESS_LIMIT: Duration = Duration::from_secs(90);
/// One in this many run-file mutations is also rendered as a report (charts are the slow
/// part); `INFERBENCH_FUZZ_REPORT_EVERY=1` renders every one.
fn report_every() -> usize {
    env_number("INFERBENCH_FUZZ_REPORT_EVERY", 25).max(1) as usize
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch folder, in memory where the machine has /dev/shm: the commands write their
/// outputs atomically with fsync, which on a busy disk costs more than the commands.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    env_number("INFERBENCH_FUZZ_SEED", 19)
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_text(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => s.push_str(&format!(".{k}")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Paths of the values in `v` worth mutating: every object field, and of a list its first,
/// second, middle and last items (the rest are alike).
fn paths(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            let mut picks = vec![0, 1, a.len() / 2, a.len().saturating_sub(1)];
            picks.sort_unstable();
            picks.dedup();
            for i in picks.into_iter().filter(|&i| i < a.len()) {
                at.push(Step::Index(i));
                out.push(at.clone());
                paths(&a[i], at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// Written where a mutation wants a token JSON cannot hold (`NaN`, `Infinity`).
const RAW: &str = "\"__raw_token__\"";

/// A mutated file: what was done, and the text.
struct Mutation {
    what: String,
    text: String,
}

/// Numbers a hostile file may hold where a figure or count is expected.
fn numbers() -> [Value; 12] {
    [
        json!(0),
        json!(-1),
        json!(1e308),
        json!(-1e308),
        json!(1.5),
        json!(1e-300),
        json!(4294967296u64),
        json!(u64::MAX),
        json!(-0.0),
        json!(1e18),
        json!(2),
        json!(100_000),
    ]
}

/// One random mutation of `base` (parsed from `text`): mostly of a number (the values the
/// commands compute with), else of any field or list.
fn mutate(base: &Value, text: &str, all: &[Vec<Step>], rng: &mut ChaCha8Rng) -> Mutation {
    if rng.random_ratio(1, 12) {
        let mut cut = rng.random_range(0..text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        return Mutation {
            what: format!("truncated at byte {cut} of {}", text.len()),
            text: text[..cut].to_string(),
        };
    }
    let numeric: Vec<&Vec<Step>> = all
        .iter()
        .filter(|p| base.pointer(&pointer(p)).is_some_and(Value::is_number))
        .collect();
    let path = if rng.random_ratio(3, 5) && !numeric.is_empty() {
        numeric[rng.random_range(0..numeric.len())]
    } else {
        &all[rng.random_range(0..all.len())]
    };
    let mut v = base.clone();
    let mut raw = None;
    let target = get_mut(&mut v, path).expect("the path was read from the value");
    let what = match (target.is_number(), rng.random_range(0..10)) {
        (true, 0..=6) => {
            let numbers = numbers();
            *target = numbers[rng.random_range(0..numbers.len())].clone();
            format!("set to {target}")
        }
        (true, 7) | (false, 0) => {
            let token = [
                "NaN",
                "Infinity",
                "-Infinity",
                "1e999",
                "18446744073709551616",
            ][rng.random_range(0..5)];
            raw = Some(token);
            *target = Value::String("__raw_token__".into());
            format!("set to the token {token}")
        }
        (_, 8) | (false, 1..=2) => {
            let wrong = [
                json!("x"),
                json!("NaN"),
                json!(true),
                Value::Null,
                json!([]),
                json!({}),
                json!([1, "a"]),
                json!({"a": 1}),
            ];
            *target = wrong[rng.random_range(0..wrong.len())].clone();
            format!("set to {target}")
        }
        (false, 3) if target.is_array() => {
            target.as_array_mut().unwrap().clear();
            "emptied".to_string()
        }
        (false, 4) if target.is_array() => {
            let a = target.as_array_mut().unwrap();
            let item = a.first().cloned().unwrap_or(json!(0.5));
            let n = if rng.random_ratio(1, 2) { 1000 } else { 50_000 };
            a.resize(n, item);
            format!("grown to {n} items")
        }
        (false, 5) => match v.get_mut("cases").and_then(Value::as_array_mut) {
            Some(cases) if !cases.is_empty() => {
                let i = rng.random_range(0..cases.len());
                let copy = cases[i].clone();
                cases.push(copy);
                return Mutation {
                    what: format!("cases[{i}] duplicated"),
                    text: serde_json::to_string(&v).unwrap(),
                };
            }
            _ => delete(&mut v, path),
        },
        _ => delete(&mut v, path),
    };
    let mut text = serde_json::to_string(&v).unwrap();
    if let Some(token) = raw {
        text = text.replacen(RAW, token, 1);
    }
    Mutation {
        what: format!("{}: {what}", path_text(path)),
        text,
    }
}

/// A JSON pointer (`/cases/0/id`) to the value at `path`.
fn pointer(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => format!("/{i}"),
        })
        .collect()
}

/// Deletes the value at `path` from its object or list.
fn delete(v: &mut Value, path: &[Step]) -> String {
    let (parent, last) = path.split_at(path.len() - 1);
    match (&last[0], get_mut(v, parent).unwrap()) {
        (Step::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (Step::Index(i), Value::Array(a)) => {
            a.remove(*i);
        }
        _ => unreachable!("a path's parent holds its last step"),
    }
    "deleted".to_string()
}

/// Runs command lines in this process, catching panics, from several threads; a watchdog
/// aborts the test when one call runs past `CALL_LIMIT`, naming it.
struct InProcess {
    /// Per thread: when its call started (ms since `origin`; 0 when idle), and what it runs.
    started: Arc<Vec<AtomicU64>>,
    what: Arc<Vec<Mutex<String>>>,
    origin: Instant,
}

impl InProcess {
    fn new(threads: usize) -> Self {
        let this = InProcess {
            started: Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect()),
            what: Arc::new((0..threads).map(|_| Mutex::new(String::new())).collect()),
            origin: Instant::now(),
        };
        let (started, what, origin) = (this.started.clone(), this.what.clone(), this.origin);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = origin.elapsed().as_millis() as u64;
            for (t, at) in started.iter().enumerate() {
                let at = at.load(Ordering::SeqCst);
                if at != 0 && Duration::from_millis(now.saturating_sub(at)) > CALL_LIMIT {
                    eprintln!(
                        "HANG: over {CALL_LIMIT:?} in {} (seed {})",
                        what[t].lock().unwrap(),
                        seed()
                    );
                    std::process::abort();
                }
            }
        });
        this
    }

    /// The exit code of `inferbench ARGS` run by thread `t`, or the panic's message.
    fn run(&self, t: usize, what: &str, args: &[&str]) -> Result<i32, String> {
        *self.what[t].lock().unwrap() = format!("{what}: inferbench {}", args.join(" "));
        let at = (self.origin.elapsed().as_millis() as u64).max(1);
        self.started[t].store(at, Ordering::SeqCst);
        let argv: Vec<&str> = std::iter::once("inferbench")
            .chain(args.iter().copied())
            .collect();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| inferbench::cli::run_args(argv)));
        self.started[t].store(0, Ordering::SeqCst);
        result.map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into())
        })
    }
}

/// Collects what went wrong, to fail once with all of it.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn expect_exit(&mut self, what: &str, args: &[&str], got: Result<i32, String>) {
        match got {
            Ok(0..=2) => {}
            Ok(code) => self
                .0
                .push(format!("{what}: `{}` exited {code}", args.join(" "))),
            Err(panic) => self
                .0
                .push(format!("{what}: `{}` panicked: {panic}", args.join(" "))),
        }
    }

    fn assert_none(self, count: usize) {
        assert!(
            self.0.is_empty(),
            "{} of {count} calls went wrong (seed {}):\n{}",
            self.0.len(),
            seed(),
            self.0.join("\n")
        );
    }
}

/// The run files the mutations start from.
const RUN_FILES: &[&str] = &[
    "tests/fixtures/runs/small.json",
    "tests/fixtures/runs/small-candidate.json",
    "tests/fixtures/runs/report.json",
    "tests/fixtures/legacy/legacy.json",
    "tests/fixtures/legacy/legacy-shard1.json",
    "tests/fixtures/legacy/legacy-shard2.json",
    "tests/fixtures/legacy/legacy-profile.json",
];

/// The file each run file is checked against and merged with.
fn partner(file: &str) -> &'static str {
    match file {
        "tests/fixtures/legacy/legacy-shard1.json" => "tests/fixtures/legacy/legacy-shard2.json",
        f if f.contains("legacy") => "tests/fixtures/legacy/legacy-shard1.json",
        "tests/fixtures/runs/report.json" => "tests/fixtures/runs/report.json",
        _ => "tests/fixtures/runs/small.json",
    }
}

/// The commands that read a run file, on `mutated` (a file in `dir`).
fn commands(file: &str, mutated: &str, dir: &Path, i: usize) -> Vec<Vec<String>> {
    let other = root().join(partner(file)).display().to_string();
    let out = |name: &str| dir.join(format!("{i}-{name}")).display().to_string();
    let format = ["bencher", "gab-smaller", "gab-bigger", "csv"][i % 4];
    // The mutation as the candidate (whose thresholds count) or as the baseline, in turn.
    let check = if i.is_multiple_of(2) {
        vec!["check", "--baseline", &other, "--candidate", mutated]
    } else {
        vec!["check", "--baseline", mutated, "--candidate", &other]
    };
    let mut lines = vec![
        // First: its exit code says whether the file was refused at load.
        vec!["export", "--format", format, mutated],
        check,
        vec!["merge", mutated, &other, "--output", &out("merged.json")],
    ]
    .into_iter()
    .map(|l| l.into_iter().map(String::from).collect())
    .collect::<Vec<Vec<String>>>();
    if i.is_multiple_of(report_every()) {
        lines.push(vec![
            "report".into(),
            mutated.into(),
            "--out".into(),
            out("report"),
        ]);
    }
    lines
}

/// Mutation `j`'s own generator: the same mutations whatever the number of threads.
fn rng_of(j: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed() ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[test]
fn mutated_run_files_never_panic_or_hang_in_process() {
    let total = env_number("INFERBENCH_FUZZ_MUTATIONS", 2000) as usize;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let runner = InProcess::new(threads);
    let dir = scratch();
    let bases: Vec<(String, Value, Vec<Vec<Step>>)> = RUN_FILES
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(root().join(file)).unwrap();
            let base: Value = serde_json::from_str(&text).unwrap();
            let mut all = Vec::new();
            paths(&base, &mut Vec::new(), &mut all);
            (text, base, all)
        })
        .collect();
    let findings = Mutex::new(Findings::default());
    let (calls, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (runner, dir, bases) = (&runner, dir.path(), &bases);
            let (findings, calls, refused) = (&findings, &calls, &refused);
            s.spawn(move || {
                for j in (t..total).step_by(threads) {
                    let k = j % RUN_FILES.len();
                    let (file, (text, base, all)) = (RUN_FILES[k], &bases[k]);
                    let m = mutate(base, text, all, &mut rng_of(j));
                    let path = dir.join(format!("m{j}.json"));
                    std::fs::write(&path, &m.text).unwrap();
                    let what = format!("{file}, {}", m.what);
                    for (n, args) in commands(file, path.to_str().unwrap(), dir, j)
                        .iter()
                        .enumerate()
                    {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let got = runner.run(t, &what, &args);
                        let load_refused = n == 0 && got == Ok(2);
                        findings.lock().unwrap().expect_exit(&what, &args, got);
                        calls.fetch_add(1, Ordering::Relaxed);
                        if load_refused {
                            // Every command reads it with the same loader: refused by all.
                            refused.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    std::fs::remove_file(&path).unwrap();
                }
            });
        }
    });
    let (calls, refused) = (calls.into_inner() as usize, refused.into_inner() as usize);
    eprintln!(
        "{total} mutations on {threads} threads, {refused} refused at load, {calls} commands in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    findings.into_inner().unwrap().assert_none(calls);
    // The mutations reach the commands, not only the loader.
    assert!(
        refused > total / 4 && refused < total * 3 / 4,
        "{refused} of {total} refused"
    );
}

#[test]
fn a_list_longer_than_any_file_holds_is_refused() {
    let dir = scratch();
    let mut run: Value = serde_json::from_str(include_str!("fixtures/runs/small.json")).unwrap();
    let samples = run["cases"][0]["latency_ms"]["samples"]
        .as_array_mut()
        .unwrap();
    samples.resize(inferbench::schema::validate::MAX_ITEMS + 1, json!(0.0025));
    let path = dir.path().join("huge.json");
    std::fs::write(&path, serde_json::to_string(&run).unwrap()).unwrap();
    let err = inferbench::results::read_json(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`cases[0].latency_ms.samples`: holds 10000001 items"),
        "{err}"
    );
}

// ---- journals ----

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// A journal of the fixed run `small.json` (as `run` writes one): its header, then each case
/// as a finished case line, and a process line of a case still running.
fn journal_lines(output: &Path) -> Vec<Value> {
    let run: Value = serde_json::from_str(include_str!("fixtures/runs/small.json")).unwrap();
    let suite = root().join("tests/fixtures/runs/fixture.toml");
    let mut header = json!({
        "type": "header",
        "schema_version": run["schema_version"],
        "suite_file": suite,
        "suite_sha256": sha256(&suite),
        "output": output,
        "quick": run["quick"],
        "filter": null,
        "started_at": run["started_at"],
        "settings": run["settings"],
        "environment": run["environment"],
    });
    header["shard"] = Value::Null;
    let mut lines = vec![header];
    for case in run["cases"].as_array().unwrap() {
        let mut line = case.clone();
        line["type"] = json!("case");
        lines.push(line);
    }
    let case = &run["cases"][1];
    let samples = case["latency_ms"]["samples"].clone();
    lines.push(json!({
        "type": "process",
        "case_id": "not-a-case-of-this-suite",
        "process": 1,
        "measurement": {
            "samples_ms": samples,
            "warmup_iterations": case["warmup_iterations"],
            "warmup_s": case["warmup_s"],
            "measured_s": case["measured_s"],
            "stop_reason": case["stop_reason"],
            "noise": case["noise"],
            "threads": case["threads_in_effect"],
            "params": case["model"]["params"],
            "weight_bytes": case["model"]["weight_bytes"],
            "flops_per_sample": case["model"]["flops_per_sample"],
            "clock_overhead_ns": case["clock_overhead_ns"],
            "build_s": 0.01,
            "memory": case["memory"],
            "energy": null,
            "cold_start": case["cold_start"],
            "stage_samples_ms": [],
            "reference_us": [40.0, 41.0],
        }
    }));
    lines
}

fn journal_text(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| format!("{}\n", serde_json::to_string(l).unwrap()))
        .collect()
}

/// One random mutation of a journal: of one line's values, or of its lines.
fn mutate_journal(lines: &[Value], rng: &mut ChaCha8Rng) -> Mutation {
    let text = journal_text(lines);
    match rng.random_range(0..10) {
        0 => {
            let mut cut = rng.random_range(0..text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            Mutation {
                what: format!("truncated at byte {cut}"),
                text: text[..cut].to_string(),
            }
        }
        1 => {
            let (i, j) = (
                rng.random_range(0..lines.len()),
                rng.random_range(0..lines.len()),
            );
            let mut l = lines.to_vec();
            l.swap(i, j);
            Mutation {
                what: format!("lines {} and {} swapped", i + 1, j + 1),
                text: journal_text(&l),
            }
        }
        2 => {
            let i = rng.random_range(0..lines.len());
            let mut l = lines.to_vec();
            let copy = l[i].clone();
            l.insert(i, copy);
            Mutation {
                what: format!("line {} twice", i + 1),
                text: journal_text(&l),
            }
        }
        _ => {
            let i = rng.random_range(0..lines.len());
            let line_text = serde_json::to_string(&lines[i]).unwrap();
            let mut all = Vec::new();
            paths(&lines[i], &mut Vec::new(), &mut all);
            let m = mutate(&lines[i], &line_text, &all, rng);
            let mut out = String::new();
            for (k, l) in lines.iter().enumerate() {
                out.push_str(&if k == i {
                    m.text.replace('\n', " ")
                } else {
                    serde_json::to_string(l).unwrap()
                });
                out.push('\n');
            }
            Mutation {
                what: format!("line {}: {}", i + 1, m.what),
                text: out,
            }
        }
    }
}

#[test]
fn the_unmutated_journal_resumes_into_a_complete_run() {
    let dir = scratch();
    let output = dir.path().join("run.json");
    let journal = dir.path().join("run.journal.jsonl");
    std::fs::write(&journal, journal_text(&journal_lines(&output))).unwrap();
    let loaded = inferbench::results::journal::load(&journal).expect("a valid journal");
    assert_eq!(loaded.cases.len(), 2);
    let out = support::inferbench(&["run", "--resume", journal.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    let run = inferbench::results::read_json(&output).unwrap();
    assert_eq!(run.cases.len(), 2);
}

#[test]
fn a_journal_with_impossible_values_is_refused_naming_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("run.json");
    let journal = dir.path().join("run.journal.jsonl");
    let mut lines = journal_lines(&output);
    lines[2]["latency_ms"]["samples"][7] = json!(-1.0);
    lines[0]["settings"]["bootstrap_resamples"] = json!(u64::MAX);
    for (broken, needle) in [
        (
            1,
            "`line 1: settings.bootstrap_resamples`: must be between 100 and 1000000",
        ),
        (
            3,
            "`line 3: latency_ms.samples[7]`: must not be negative, got -1",
        ),
    ] {
        let mut l = journal_lines(&output);
        l[broken - 1] = lines[broken - 1].clone();
        std::fs::write(&journal, journal_text(&l)).unwrap();
        let out = support::inferbench(&["run", "--resume", journal.to_str().unwrap()]);
        let stderr = support::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(journal.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains(needle), "no `{needle}` in {stderr}");
    }
}

#[test]
fn mutated_journals_never_panic_or_hang() {
    let total = env_number("INFERBENCH_FUZZ_MUTATIONS", 2000) as usize / 2;
    let resumed = 48;
    let dir = scratch();
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ 0x6a6f75726e616c);
    let mut findings = Findings::default();
    let output = dir.path().join("run.json");
    let lines = journal_lines(&output);
    for i in 0..total {
        let m = mutate_journal(&lines, &mut rng);
        let path = dir.path().join(format!("j{i}.journal.jsonl"));
        std::fs::write(&path, &m.text).unwrap();
        let loaded = std::panic::catch_unwind(|| inferbench::results::journal::load(&path));
        if let Err(p) = loaded {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic".into());
            findings
                .0
                .push(format!("journal {}: load panicked: {msg}", m.what));
        }
        if i < resumed {
            // Through the binary: `run --resume` (in its own folder, for the files it writes).
            let work = dir.path().join(format!("w{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let got = binary(&["run", "--resume", path.to_str().unwrap()], &work);
            findings.expect_exit(&format!("journal {}", m.what), &["run --resume"], got);
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&output);
    }
    findings.assert_none(total);
}

/// Runs the real binary in `cwd`, killed after `PROCESS_LIMIT`: its exit code, or what ended
/// it.
fn binary(args: &[&str], cwd: &Path) -> Result<i32, String> {
    let mut child = support::command()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            return match status.code() {
                Some(101) => Err(format!("panicked: {stderr}")),
                Some(code) => Ok(code),
                None => Err(format!("killed by a signal: {stderr}")),
            };
        }
        if started.elapsed() > PROCESS_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {PROCESS_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Mutations of each run file run through the binary (each by three or four commands: a
/// few hundred processes in all).
const BINARY_SAMPLE: usize = 16;

#[test]
fn a_sample_of_mutated_run_files_through_the_binary() {
    let dir = scratch();
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ 0x62696e);
    let mut findings = Findings::default();
    let mut calls = 0;
    for (k, file) in RUN_FILES.iter().enumerate() {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let base: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        paths(&base, &mut Vec::new(), &mut all);
        for i in 0..BINARY_SAMPLE {
            let m = mutate(&base, &text, &all, &mut rng);
            let path = dir.path().join(format!("b{k}-{i}.json"));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(m.text.as_bytes())
                .unwrap();
            for args in commands(file, path.to_str().unwrap(), dir.path(), i) {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let got = binary(&args, dir.path());
                findings.expect_exit(&format!("{file}, {}", m.what), &args, got);
                calls += 1;
            }
        }
    }
    findings.assert_none(calls);
}
