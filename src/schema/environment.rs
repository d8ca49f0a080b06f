//! The environment fingerprint of a run (what it ran on), and how two of them differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineState {
    /// cpufreq governor of CPU 0 (`performance`, `powersave`, ...), when exposed.
    pub governor: Option<String>,
    pub cur_freq_mhz: Option<f64>,
    pub max_freq_mhz: Option<f64>,
    /// Readable thermal zones, degrees Celsius.
    pub thermal: Vec<ThermalZone>,
    /// `none`, a hypervisor name (`kvm`, `microsoft`, ...), or `unknown hypervisor`.
    pub virtualization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalZone {
    pub zone: String,
    pub kind: String,
    pub celsius: f64,
}
