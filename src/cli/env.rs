//! `env`: the environment fingerprint, and with `--peaks` the machine's measured peaks.

use anyhow::anyhow;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::tables::peaks_table;
use super::{exit, load_suite, ExitWith, Failure, PeaksArgs};
use crate::peaks;
use crate::probe::env::Environment;
use crate::roofline::Peaks;
use crate::target::DeviceKind;

pub(super) fn cmd_peaks(args: PeaksArgs) -> Result<i32, Failure> {
    let env = Environment::capture();
    let mut threads = if !args.threads.is_empty() {
        args.threads.clone()
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
        args.copy_bytes >> 20,
        args.repeats,
        threads
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        n = args.matmul_n,
    );
    let measured = peaks::measure_all(
        &threads,
        args.copy_bytes,
        args.matmul_n,
        args.repeats,
        &mut |t| eprintln!("  {t} thread(s)..."),
    )
    .exit_with(exit::INTERNAL)?;
    let fingerprint = peaks::fingerprint(&env);
    let mut all = peaks::load_cached(&args.cache_dir, &env)
        .ok()
        .flatten()
        .unwrap_or(Peaks {
            fingerprint: fingerprint.clone(),
            cpu_model: env.cpu_model.clone(),
            by_threads: Vec::new(),
        });
    all.merge(measured);
    let path = peaks::store(&args.cache_dir, &all).exit_with(exit::INTERNAL)?;
    if args.json {
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

pub(super) fn cmd_env(json: bool) -> Result<i32, Failure> {
    let env = Environment::capture();
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
