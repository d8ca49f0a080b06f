//! The environment fingerprint: what a run ran on, so two runs can be judged comparable.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::energy::{self, Rapl};
use crate::schema::Environment;

/// ISA extensions that change which kernels candle (gemm, quantized matmul) can use.
const ISA_FLAGS_OF_INTEREST: &[&str] = &[
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
];

/// Thread-related environment variables that candle and its dependencies read.
pub const THREAD_VARS: &[&str] = &["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS", "OMP_NUM_THREADS"];

/// The environment of this process, now.
pub fn capture() -> Environment {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let (cpu_model, cpu_vendor) = sys
        .cpus()
        .first()
        .map(|c| (c.brand().trim().to_string(), c.vendor_id().to_string()))
        .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
    let load = System::load_average();
    let thread_env = THREAD_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let mut features = Vec::new();
    if cfg!(feature = "cuda") {
        features.push("cuda".to_string());
    }
    Environment {
        hostname: System::host_name(),
        cpu_model,
        cpu_vendor,
        arch: System::cpu_arch(),
        physical_cores: System::physical_core_count(),
        logical_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(sys.cpus().len()),
        isa_flags: isa_flags(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
        memory_total_bytes: sys.total_memory(),
        os: System::long_os_version(),
        kernel: System::kernel_version(),
        rustc: env!("INFERBENCH_RUSTC_VERSION").to_string(),
        candle_version: env!("INFERBENCH_CANDLE_VERSION").to_string(),
        inferbench_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: env!("INFERBENCH_GIT_COMMIT").to_string(),
        git_dirty: env!("INFERBENCH_GIT_DIRTY") == "true",
        thread_env,
        load_average: [load.one, load.five, load.fifteen],
        features,
        state: super::state::capture(),
        rapl: match Rapl::open(std::path::Path::new(energy::POWERCAP_ROOT)) {
            Ok(r) => format!("readable: {}", r.domain_names().join(", ")),
            Err(why) => why.to_string(),
        },
        nvml: energy::nvml::availability(),
    }
}

/// The flags of interest from the first `flags`/`Features` line of /proc/cpuinfo.
fn isa_flags(cpuinfo: &str) -> Vec<String> {
    let line = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v)
        .unwrap_or("");
    let present: std::collections::BTreeSet<&str> = line.split_whitespace().collect();
    ISA_FLAGS_OF_INTEREST
        .iter()
        .filter(|f| present.contains(**f))
        .map(|f| f.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_kernel_relevant_flags() {
        let cpuinfo =
            "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile ht\n";
        assert_eq!(
            isa_flags(cpuinfo),
            [
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "avx512f",
                "avx512_vnni",
                "amx_tile"
            ]
        );
        assert!(isa_flags("").is_empty());
    }

    #[test]
    fn capture_fills_the_build_fields() {
        let env = capture();
        assert!(env.logical_cores >= 1);
        assert!(env.rustc.starts_with("rustc "), "{}", env.rustc);
        assert_ne!(env.candle_version, "unknown");
        assert!(env.memory_total_bytes > 0);
    }

    #[test]
    fn differences_separate_blocking_from_informational() {
        let a = capture();
        assert!(a.differences(&a).is_empty());
        let mut b = a.clone();
        b.cpu_model = "Other CPU".into();
        b.git_commit = "0123".into();
        b.load_average = [9.0, 9.0, 9.0];
        let d = a.differences(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d[0].field.as_str(), d[0].blocking), ("cpu_model", true));
        assert_eq!(d[0].candidate, "Other CPU");
        assert_eq!((d[1].field.as_str(), d[1].blocking), ("git_commit", false));
    }
}
