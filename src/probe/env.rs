//! The environment fingerprint: what a run ran on, so two runs can be judged comparable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::energy::{self, Rapl};
use super::state::MachineState;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub hostname: Option<String>,
    pub cpu_model: String,
    pub cpu_vendor: String,
    pub arch: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    /// ISA extensions present (from /proc/cpuinfo), limited to those that matter for kernels.
    pub isa_flags: Vec<String>,
    pub memory_total_bytes: u64,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub rustc: String,
    pub candle_version: String,
    pub inferbench_version: String,
    pub git_commit: String,
    /// The build had uncommitted changes to tracked files.
    pub git_dirty: bool,
    /// Thread variables of the parent process (each worker gets its target's own values).
    pub thread_env: BTreeMap<String, String>,
    /// 1, 5 and 15 minute load averages when the run started.
    pub load_average: [f64; 3],
    pub features: Vec<String>,
    /// Frequency governor, clocks, temperatures, virtualisation at the start of the run.
    /// (Run files written before these were recorded read them as unknown.)
    #[serde(default)]
    pub state: MachineState,
    /// Whether the RAPL energy counters can be read here, or why not.
    #[serde(default)]
    pub rapl: String,
    /// Whether NVIDIA's management library loads here, or why not.
    #[serde(default)]
    pub nvml: String,
}

impl Environment {
    pub fn capture() -> Self {
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
            state: MachineState::capture(),
            rapl: match Rapl::open(std::path::Path::new(energy::POWERCAP_ROOT)) {
                Ok(r) => format!("readable: {}", r.domain_names().join(", ")),
                Err(why) => why,
            },
            nvml: energy::nvml::availability(),
        }
    }

    /// (field, value) rows for the `env` command's table.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        vec![
            ("hostname", or_unknown(&self.hostname)),
            ("cpu_model", self.cpu_model.clone()),
            ("cpu_vendor", self.cpu_vendor.clone()),
            ("arch", self.arch.clone()),
            (
                "physical_cores",
                self.physical_cores
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unknown".into()),
            ),
            ("logical_cores", self.logical_cores.to_string()),
            ("isa_flags", self.isa_flags.join(" ")),
            (
                "memory_total",
                format!(
                    "{:.1} GiB",
                    self.memory_total_bytes as f64 / (1u64 << 30) as f64
                ),
            ),
            ("os", or_unknown(&self.os)),
            ("kernel", or_unknown(&self.kernel)),
            ("rustc", self.rustc.clone()),
            ("candle", self.candle_version.clone()),
            ("inferbench", self.inferbench_version.clone()),
            (
                "git_commit",
                format!(
                    "{}{}",
                    self.git_commit,
                    if self.git_dirty { " (dirty)" } else { "" }
                ),
            ),
            (
                "thread_env",
                if self.thread_env.is_empty() {
                    "(none set)".into()
                } else {
                    self.thread_env
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            ),
            (
                "load_average",
                format!(
                    "{:.2} {:.2} {:.2}",
                    self.load_average[0], self.load_average[1], self.load_average[2]
                ),
            ),
            (
                "features",
                if self.features.is_empty() {
                    "(cpu only)".into()
                } else {
                    self.features.join(" ")
                },
            ),
            ("virtualization", or_unknown(&self.state.virtualization)),
            (
                "governor",
                self.state
                    .governor
                    .clone()
                    .unwrap_or_else(|| "not exposed".into()),
            ),
            (
                "cpu_mhz",
                match (self.state.cur_freq_mhz, self.state.max_freq_mhz) {
                    (Some(c), Some(m)) => format!("{c:.0} (max {m:.0})"),
                    (Some(c), None) => format!("{c:.0}"),
                    _ => "unknown".into(),
                },
            ),
            (
                "thermal",
                if self.state.thermal.is_empty() {
                    "no readable thermal zone".into()
                } else {
                    self.state
                        .thermal
                        .iter()
                        .map(|t| format!("{} {:.1} C", t.kind, t.celsius))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            ("rapl", self.rapl.clone()),
            ("nvml", self.nvml.clone()),
        ]
    }
}

/// One field that differs between the environments of two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvDifference {
    pub field: String,
    pub baseline: String,
    pub candidate: String,
    /// The difference makes timings incomparable (another CPU, ISA, version of inferbench or
    /// candle). Other differences are listed for information only.
    pub blocking: bool,
}

impl Environment {
    /// Fields that differ from `other` (`self` is the baseline), blocking ones first.
    ///
    /// Blocking: CPU model, vendor and architecture, the ISA flags, the inferbench and candle
    /// versions. Informational: host name, core counts, memory, OS, kernel, rustc, git
    /// commit, the parent's thread variables (each worker sets its own) and build features.
    /// The load average always differs and is not listed.
    pub fn differences(&self, other: &Environment) -> Vec<EnvDifference> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        let fields: Vec<(&str, String, String, bool)> = vec![
            (
                "cpu_model",
                self.cpu_model.clone(),
                other.cpu_model.clone(),
                true,
            ),
            (
                "cpu_vendor",
                self.cpu_vendor.clone(),
                other.cpu_vendor.clone(),
                true,
            ),
            ("arch", self.arch.clone(), other.arch.clone(), true),
            (
                "isa_flags",
                self.isa_flags.join(" "),
                other.isa_flags.join(" "),
                true,
            ),
            (
                "inferbench_version",
                self.inferbench_version.clone(),
                other.inferbench_version.clone(),
                true,
            ),
            (
                "candle_version",
                self.candle_version.clone(),
                other.candle_version.clone(),
                true,
            ),
            ("hostname", opt(&self.hostname), opt(&other.hostname), false),
            (
                "logical_cores",
                self.logical_cores.to_string(),
                other.logical_cores.to_string(),
                false,
            ),
            (
                "physical_cores",
                format!("{:?}", self.physical_cores),
                format!("{:?}", other.physical_cores),
                false,
            ),
            (
                "memory_total_bytes",
                self.memory_total_bytes.to_string(),
                other.memory_total_bytes.to_string(),
                false,
            ),
            ("os", opt(&self.os), opt(&other.os), false),
            ("kernel", opt(&self.kernel), opt(&other.kernel), false),
            ("rustc", self.rustc.clone(), other.rustc.clone(), false),
            (
                "git_commit",
                commit_label(&self.git_commit, self.git_dirty),
                commit_label(&other.git_commit, other.git_dirty),
                false,
            ),
            (
                "thread_env",
                format!("{:?}", self.thread_env),
                format!("{:?}", other.thread_env),
                false,
            ),
            (
                "features",
                self.features.join(" "),
                other.features.join(" "),
                false,
            ),
        ];
        let mut out: Vec<EnvDifference> = fields
            .into_iter()
            .filter(|(_, a, b, _)| a != b)
            .map(|(field, baseline, candidate, blocking)| EnvDifference {
                field: field.to_string(),
                baseline,
                candidate,
                blocking,
            })
            .collect();
        out.sort_by_key(|d| !d.blocking);
        out
    }
}

fn commit_label(commit: &str, dirty: bool) -> String {
    format!("{commit}{}", if dirty { " (dirty)" } else { "" })
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
        let env = Environment::capture();
        assert!(env.logical_cores >= 1);
        assert!(env.rustc.starts_with("rustc "), "{}", env.rustc);
        assert_ne!(env.candle_version, "unknown");
        assert!(env.memory_total_bytes > 0);
    }

    #[test]
    fn differences_separate_blocking_from_informational() {
        let a = Environment::capture();
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
