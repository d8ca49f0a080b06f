//! `env`: the environment fingerprint, and with `--peaks` the machine's measured peaks.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::tables::peaks_table;
use super::{exit, load_suite, ExitWith, Failure};
use crate::peaks;
use crate::schema::Peaks;
use crate::target::DeviceKind;

#[derive(Args, Debug)]
pub struct EnvArgs {
    /// As JSON
    #[arg(long)]
    json: bool,
    /// Measure memory bandwidth (a large copy) and f32 matmul GFLOP/s (candle) for each
    /// thread count, each in its own child process, and cache them for `run`'s roofline
    #[arg(long)]
    peaks: bool,
    #[command(flatten)]
    measure: PeaksArgs,
    /// Folder of the cache the peaks are stored in (<dir>/peaks/<machine fingerprint>.json)
    #[arg(long, default_value = ".cache/inferbench")]
    cache_dir: PathBuf,
}

/// How `env --peaks` measures; every option needs `--peaks`.
#[derive(Args, Debug)]
pub struct PeaksArgs {
    /// Thread counts to measure, as in `1,2,4` [default: the suite's, else 1 and all
    /// logical CPUs]
    #[arg(long, value_delimiter = ',', requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: Vec<u64>,
    /// Measure the thread counts of this suite's CPU targets
    #[arg(long, requires = "peaks", value_name = "SUITE")]
    suite: Option<PathBuf>,
    /// Size of the copied buffer in MiB (the destination is as large)
    #[arg(long, default_value_t = 256, requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=65536))]
    copy_mb: u64,
    /// Side of the square f32 matrices multiplied
    #[arg(long, default_value_t = 2048, requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=32768))]
    matmul_n: u64,
    /// Timed repeats of each measurement (the best is kept), after one warm-up
    #[arg(long, default_value_t = 5, requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=1000))]
    repeats: u64,
}

pub(super) fn execute(args: EnvArgs) -> Result<i32, Failure> {
    if args.peaks {
        measure_peaks(&args.measure, args.json, &args.cache_dir)
    } else {
        print_env(args.json)
    }
}

fn measure_peaks(args: &PeaksArgs, json: bool, cache_dir: &Path) -> Result<i32, Failure> {
    // clap bounds all three, so the conversions cannot truncate.
    let copy_bytes = args.copy_mb << 20;
    let matmul_n = args.matmul_n as usize;
    let repeats = args.repeats as usize;
    let env = crate::probe::env::capture();
    let mut threads: Vec<usize> = if !args.threads.is_empty() {
        args.threads.iter().map(|&t| t as usize).collect()
    } else if let Some(path) = &args.suite {
        let suite = load_suite(path)?;
        let t: Vec<usize> = suite
            .targets
            .iter()
            .filter(|t| t.device == DeviceKind::Cpu)
            .map(|t| t.threads)
            .collect();
        if t.is_empty() {
            return Err(anyhow!(
                "{} has no CPU target: peaks are measured for CPU thread counts; use --threads",
                path.display()
            ))
            .exit_with(exit::INVALID_INPUT);
        }
        t
    } else {
        vec![1, env.logical_cores]
    };
    threads.sort();
    threads.dedup();
    eprintln!(
        "measuring peaks: copy of {} MiB (read + write counted), {n}x{n} f32 matmul with candle, best of {} after a warm-up, for {} thread(s)",
        copy_bytes >> 20,
        repeats,
        threads
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        n = matmul_n,
    );
    let measured = peaks::measure_all(&threads, copy_bytes, matmul_n, repeats, &mut |t| {
        eprintln!("  {t} thread(s)...")
    })
    .exit_with(exit::INTERNAL)?;
    let fingerprint = peaks::fingerprint(&env);
    let mut all = peaks::load_cached(cache_dir, &env)
        .ok()
        .flatten()
        .unwrap_or(Peaks {
            fingerprint: fingerprint.clone(),
            cpu_model: env.cpu_model.clone(),
            by_threads: Vec::new(),
        });
    all.merge(measured);
    let path = peaks::store(cache_dir, &all).exit_with(exit::INTERNAL)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).exit_with(exit::INTERNAL)?
        );
    } else {
        println!("{}", peaks_table(&all, &threads));
    }
    eprintln!(
        "cached in {} (machine fingerprint {fingerprint}); `run` copies them into every run",
        path.display()
    );
    Ok(exit::OK)
}

fn print_env(json: bool) -> Result<i32, Failure> {
    let env = crate::probe::env::capture();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&env).exit_with(exit::INTERNAL)?
        );
        return Ok(exit::OK);
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["field", "value"]);
    for (k, v) in env.rows() {
        table.add_row([k.to_string(), v]);
    }
    println!("{table}");
    Ok(exit::OK)
}
