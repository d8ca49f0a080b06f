//! Measured machine peaks for the roofline (issue #7, part 4): memory bandwidth (a large copy)
//! and f32 matmul throughput with candle, per CPU thread count, and their cache.
//!
//! Each thread count is measured in a fresh child process (the hidden `__peaks` subcommand,
//! like the case worker in `worker/`) whose `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` are
//! set before it starts: candle's kernels read them once (docs/methodology.md, "How a case is
//! measured"). The child is one of the places candle types may live, as the worker is.
//! Results are cached in `<cache-dir>/peaks/<fingerprint>.json`, keyed by a fingerprint of
//! the machine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::Utc;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::roofline::best;
use crate::schema::{Environment, PeakAt, Peaks};
use crate::target::{DeviceKind, Target};

/// The hidden subcommand that measures one thread count.
pub const PEAKS_SUBCOMMAND: &str = "__peaks";

/// Sizes of the measurements (defaults: `env --peaks`'s flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeakRequest {
    /// Bytes of the copied buffer (source; the destination is as large).
    pub copy_bytes: u64,
    /// Side of the square f32 matrices multiplied.
    pub matmul_n: usize,
    /// Timed repeats of each measurement, after one untimed warm-up.
    pub repeats: usize,
    /// The thread count the parent set in the child's environment (checked by the child).
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PeaksError {
    #[error("cannot start the peaks child process ({exe}): {error}")]
    Spawn { exe: PathBuf, error: std::io::Error },
    #[error("measuring peaks with {threads} thread(s) failed: {reason}")]
    Child { threads: usize, reason: String },
    #[error("cannot write the peaks cache {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the peaks cache {path} is not readable ({reason}); delete it and run `inferbench env --peaks` again")]
    Corrupt { path: PathBuf, reason: String },
}

/// The machine fingerprint peaks are cached under: SHA-256 (first 16 hex digits) of the CPU
/// model and vendor, architecture, logical cores, ISA flags, total memory and candle version.
pub fn fingerprint(env: &Environment) -> String {
    let key = serde_json::json!({
        "cpu_model": env.cpu_model,
        "cpu_vendor": env.cpu_vendor,
        "arch": env.arch,
        "logical_cores": env.logical_cores,
        "isa_flags": env.isa_flags,
        "memory_total_bytes": env.memory_total_bytes,
        "candle_version": env.candle_version,
    });
    let hex = format!("{:x}", Sha256::digest(key.to_string().as_bytes()));
    hex[..16].to_string()
}

/// `<cache_dir>/peaks/<fingerprint>.json`.
pub fn cache_path(cache_dir: &Path, fingerprint: &str) -> PathBuf {
    cache_dir.join("peaks").join(format!("{fingerprint}.json"))
}

/// The cached peaks of this machine, if any were measured.
pub fn load_cached(cache_dir: &Path, env: &Environment) -> Result<Option<Peaks>, PeaksError> {
    let path = cache_path(cache_dir, &fingerprint(env));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PeaksError::Corrupt {
                path,
                reason: e.to_string(),
            })
        }
    };
    let peaks: Peaks = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| e.to_string())
        .and_then(|v| crate::results::from_value(v).map_err(|e| e.to_string()))
        .map_err(|reason| PeaksError::Corrupt {
            path: path.clone(),
            reason,
        })?;
    peaks.validate().map_err(|problems| PeaksError::Corrupt {
        path,
        reason: format!(
            "values inferbench cannot use:\n{}",
            crate::schema::validate::describe(&problems)
        ),
    })?;
    Ok(Some(peaks))
}

/// Writes the peaks to this machine's cache file (atomically); returns its path.
pub fn store(cache_dir: &Path, peaks: &Peaks) -> Result<PathBuf, PeaksError> {
    let path = cache_path(cache_dir, &peaks.fingerprint);
    let text = serde_json::to_string_pretty(peaks).map_err(|e| PeaksError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    crate::results::write_text(&text, &path).map_err(|e| PeaksError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(path)
}

/// Measures every thread count in its own child process, in order; `before` is called with
/// each thread count before it starts.
pub fn measure_all(
    threads: &[usize],
    copy_bytes: u64,
    matmul_n: usize,
    repeats: usize,
    before: &mut dyn FnMut(usize),
) -> Result<Vec<PeakAt>, PeaksError> {
    threads
        .iter()
        .map(|&t| {
            before(t);
            measure_in_child(PeakRequest {
                copy_bytes,
                matmul_n,
                repeats,
                threads: t,
            })
        })
        .collect()
}

fn measure_in_child(req: PeakRequest) -> Result<PeakAt, PeaksError> {
    let exe = std::env::current_exe().map_err(|error| PeaksError::Spawn {
        exe: PathBuf::from("inferbench"),
        error,
    })?;
    let mut child = Command::new(&exe)
        .arg(PEAKS_SUBCOMMAND)
        .envs(Target::new(None, DeviceKind::Cpu, req.threads).worker_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| PeaksError::Spawn {
            exe: exe.clone(),
            error,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let body = serde_json::to_vec(&req).expect("requests are plain data");
        // A child that died at once is reported through its exit status below.
        let _ = stdin.write_all(&body);
    }
    let out = child
        .wait_with_output()
        .map_err(|error| PeaksError::Spawn {
            exe: exe.clone(),
            error,
        })?;
    let fail = |reason: String| PeaksError::Child {
        threads: req.threads,
        reason,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answer: Result<PeakAt, String> = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("unreadable answer ({e})"))
        .and_then(|r: Result<PeakAt, String>| r);
    match answer {
        Ok(p) if out.status.success() => Ok(p),
        Err(message) => Err(fail(format!(
            "{message}; exit status {}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Ok(_) => Err(fail(format!("exit status {}", out.status))),
    }
}

/// Entry point of the hidden subcommand: one `PeakRequest` on stdin, one JSON
/// `Result<PeakAt, String>` on stdout. Returns the exit code.
pub fn child_main() -> i32 {
    let mut input = String::new();
    let result = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the request: {e}"))
        .and_then(|_| {
            serde_json::from_str::<PeakRequest>(&input).map_err(|e| format!("bad request: {e}"))
        })
        .and_then(|req| measure_here(&req));
    let code = i32::from(result.is_err());
    println!(
        "{}",
        serde_json::to_string(&result).unwrap_or_else(|_| "null".into())
    );
    code
}

/// Both measurements in this process, whose thread pools were sized by its environment.
fn measure_here(req: &PeakRequest) -> Result<PeakAt, String> {
    let (pool, candle) = (
        rayon::current_num_threads(),
        candle_core::utils::get_num_threads(),
    );
    if pool != req.threads || candle != req.threads {
        return Err(format!(
            "asked for {} thread(s) but rayon's pool has {pool} and candle uses {candle}",
            req.threads
        ));
    }
    let repeats = req.repeats.max(1);
    let bandwidth = copy_bandwidth(req.copy_bytes, repeats);
    let matmul = matmul_gflops(req.matmul_n, repeats)?;
    Ok(PeakAt {
        threads: req.threads,
        measured_at: Utc::now(),
        bandwidth_gbs: best(&bandwidth),
        bandwidth_runs_gbs: bandwidth,
        copy_bytes: req.copy_bytes,
        matmul_gflops: best(&matmul),
        matmul_runs_gflops: matmul,
        matmul_n: req.matmul_n,
        repeats,
    })
}

/// Copies a `bytes`-byte buffer into another, split into one contiguous slice per thread of
/// rayon's pool (`copy_from_slice`, i.e. memcpy); both buffers are written before timing so no
/// page is first touched inside it. GB/s of bytes read + bytes written, per repeat.
fn copy_bandwidth(bytes: u64, repeats: usize) -> Vec<f64> {
    let n = (bytes / 4).max(1) as usize;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst: Vec<f32> = vec![0.0; n];
    dst.fill(1.0);
    let chunk = n.div_ceil(rayon::current_num_threads().max(1));
    let copy = |dst: &mut [f32]| {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
    };
    copy(&mut dst); // warm-up
    let mut out = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        copy(&mut dst);
        let s = t.elapsed().as_secs_f64();
        out.push(2.0 * (n * 4) as f64 / s / 1e9);
    }
    std::hint::black_box(&dst);
    out
}

/// `n x n` f32 matmuls with candle on the CPU (its gemm on rayon's pool); 2 n^3 FLOPs each,
/// GFLOP/s per repeat. The output's allocation is part of candle's op, as in a model.
fn matmul_gflops(n: usize, repeats: usize) -> Result<Vec<f64>, String> {
    use candle_core::{Device, Tensor};
    let err = |e: candle_core::Error| format!("matmul: {}", crate::model::error_text(&e));
    let a = Tensor::rand(-1f32, 1f32, (n, n), &Device::Cpu).map_err(err)?;
    let b = Tensor::rand(-1f32, 1f32, (n, n), &Device::Cpu).map_err(err)?;
    std::hint::black_box(a.matmul(&b).map_err(err)?); // warm-up
    let flops = 2.0 * (n as f64).powi(3);
    let mut out = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let c = a.matmul(&b).map_err(err)?;
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(c);
        out.push(flops / s / 1e9);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_the_machine_not_the_moment() {
        let env = crate::probe::env::capture();
        let mut later = env.clone();
        later.load_average = [9.0, 9.0, 9.0];
        later.hostname = Some("elsewhere".into());
        assert_eq!(fingerprint(&env), fingerprint(&later));
        let mut other = env.clone();
        other.cpu_model.push_str(" v2");
        assert_ne!(fingerprint(&env), fingerprint(&other));
        assert_eq!(fingerprint(&env).len(), 16);
    }

    #[test]
    fn cache_round_trip_and_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = crate::probe::env::capture();
        assert_eq!(load_cached(dir.path(), &env).unwrap(), None);
        let peaks = Peaks {
            fingerprint: fingerprint(&env),
            cpu_model: env.cpu_model.clone(),
            by_threads: vec![PeakAt {
                threads: 1,
                measured_at: Utc::now(),
                bandwidth_gbs: 10.0,
                bandwidth_runs_gbs: vec![9.0, 10.0],
                copy_bytes: 1 << 20,
                matmul_gflops: 50.0,
                matmul_runs_gflops: vec![50.0, 49.0],
                matmul_n: 64,
                repeats: 2,
            }],
        };
        let path = store(dir.path(), &peaks).unwrap();
        assert_eq!(path, cache_path(dir.path(), &peaks.fingerprint));
        assert_eq!(load_cached(dir.path(), &env).unwrap(), Some(peaks.clone()));
        std::fs::write(&path, "{ not json").unwrap();
        let err = load_cached(dir.path(), &env).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        // A hand-edited cache with impossible peaks is refused, naming the value.
        let mut bad = peaks.clone();
        bad.by_threads[0].threads = 0;
        bad.by_threads[0].matmul_gflops = -50.0;
        store(dir.path(), &bad).unwrap();
        let err = load_cached(dir.path(), &env).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("`by_threads[0].threads`"), "{err}");
        assert!(err.contains("`by_threads[0].matmul_gflops`"), "{err}");
    }

    /// Both measurements run at tiny sizes and give positive, finite rates.
    #[test]
    fn tiny_measurements_are_positive() {
        let bw = copy_bandwidth(1 << 16, 2);
        assert_eq!(bw.len(), 2);
        assert!(bw.iter().all(|x| x.is_finite() && *x > 0.0));
        let mm = matmul_gflops(32, 2).unwrap();
        assert!(mm.iter().all(|x| x.is_finite() && *x > 0.0));
    }
}
