//! Energy of a measured window: hardware counters first (RAPL for CPUs, NVML for NVIDIA
//! GPUs), else an estimate from the worker's CPU time and a TDP, always labelled so.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schema::TdpEstimate;

/// Where the Linux powercap RAPL tree lives.
pub const POWERCAP_ROOT: &str = "/sys/class/powercap";

/// Used when neither the suite nor the table gives a TDP for this CPU: a round figure per
/// hardware thread, between laptop and server parts. Set `settings.tdp_watts` to do better.
pub const DEFAULT_WATTS_PER_THREAD: f64 = 5.0;

/// A TDP for the estimate and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tdp {
    pub watts: f64,
    pub threads: f64,
    pub source: String,
}

/// Published TDPs (watts, hardware threads) of common CPUs, matched on the model string.
/// A small documented table, not a database: set `settings.tdp_watts` for anything else.
const TDP_TABLE: &[(&str, f64, f64)] = &[
    ("EPYC 7763", 280.0, 128.0),
    ("EPYC 9654", 360.0, 192.0),
    ("EPYC 7R13", 280.0, 96.0),
    ("Xeon(R) Platinum 8480", 350.0, 112.0),
    ("Xeon(R) Platinum 8375C", 300.0, 64.0),
    ("Xeon(R) Platinum 8259CL", 210.0, 48.0),
    ("Core(TM) i9-13900K", 125.0, 32.0),
    ("Ryzen 9 7950X", 170.0, 32.0),
];

/// The TDP to use: the suite's, else the table's, else the default per logical CPU.
pub fn choose_tdp(
    cpu_model: &str,
    logical_cpus: usize,
    suite_watts: Option<f64>,
    suite_threads: Option<f64>,
) -> Tdp {
    if let Some(watts) = suite_watts {
        let threads = suite_threads.unwrap_or(logical_cpus as f64);
        return Tdp {
            watts,
            threads,
            source: "suite (settings.tdp_watts)".into(),
        };
    }
    if let Some((name, watts, threads)) = TDP_TABLE
        .iter()
        .find(|(name, _, _)| cpu_model.contains(name))
    {
        return Tdp {
            watts: *watts,
            threads: *threads,
            source: format!("table: {name}"),
        };
    }
    let threads = logical_cpus.max(1) as f64;
    Tdp {
        watts: DEFAULT_WATTS_PER_THREAD * threads,
        threads,
        source: format!(
            "default: {DEFAULT_WATTS_PER_THREAD} W per logical CPU (no TDP known for CPU model `{cpu_model}`; set settings.tdp_watts)"
        ),
    }
}

/// CPU time consumed by this process so far (all threads), seconds.
pub fn process_cpu_time_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// One RAPL counter file and its wrap-around range.
#[derive(Debug, Clone)]
struct RaplDomain {
    name: String,
    energy_file: PathBuf,
    max_range_uj: u64,
}

/// Why an energy counter cannot be used. The message is recorded in the run file as it
/// reads (the environment's `rapl`, an estimate's `note`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnergyError {
    #[error("RAPL: {} not present", .0.display())]
    RaplAbsent(PathBuf),
    #[error("RAPL: {} exists but is not readable ({reason}); run as root or make it readable (chmod o+r) to measure energy", path.display())]
    RaplUnreadable { path: PathBuf, reason: String },
    #[error("RAPL: no package domain under {}", .0.display())]
    RaplNoPackage(PathBuf),
    #[error("RAPL: cannot read {}: {reason}", path.display())]
    RaplRead { path: PathBuf, reason: String },
    #[error("RAPL: bad value in {}: {reason}", path.display())]
    RaplValue { path: PathBuf, reason: String },
    #[error("NVML not available: {0}")]
    NvmlAbsent(String),
    #[error("NVML: no GPU {index}: {reason}")]
    NoGpu { index: usize, reason: String },
    #[error("NVML energy counter: {0}")]
    NvmlCounter(String),
    #[error("{0}")]
    Nvml(String),
}

/// The RAPL domains to sum: every package (`intel-rapl:N`) plus `dram` subdomains (which
/// packages do not include). Core and uncore subdomains are inside the package figure.
#[derive(Debug, Clone)]
pub struct Rapl {
    domains: Vec<RaplDomain>,
}

/// A reading: one microjoule count per domain.
#[derive(Debug, Clone, PartialEq)]
pub struct RaplReading(Vec<u64>);

impl Rapl {
    /// Finds the RAPL domains under `root` and checks they can be read. `Err` says why not,
    /// in words for the run file.
    pub fn open(root: &Path) -> Result<Rapl, EnergyError> {
        let entries =
            std::fs::read_dir(root).map_err(|_| EnergyError::RaplAbsent(root.to_path_buf()))?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("intel-rapl:"))
            })
            .collect();
        dirs.sort();
        let mut domains = Vec::new();
        for dir in dirs {
            let zone = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let name = std::fs::read_to_string(dir.join("name"))
                .unwrap_or_default()
                .trim()
                .to_string();
            let is_package = zone.matches(':').count() == 1;
            if !(is_package || name == "dram") {
                continue;
            }
            let energy_file = dir.join("energy_uj");
            if !energy_file.exists() {
                continue;
            }
            if let Err(e) = std::fs::read_to_string(&energy_file) {
                return Err(EnergyError::RaplUnreadable {
                    path: energy_file,
                    reason: e.to_string(),
                });
            }
            let max_range_uj = std::fs::read_to_string(dir.join("max_energy_range_uj"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(u64::MAX);
            domains.push(RaplDomain {
                name: if name.is_empty() { zone } else { name },
                energy_file,
                max_range_uj,
            });
        }
        if domains.is_empty() {
            return Err(EnergyError::RaplNoPackage(root.to_path_buf()));
        }
        Ok(Rapl { domains })
    }

    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name.clone()).collect()
    }

    pub fn read(&self) -> Result<RaplReading, EnergyError> {
        self.domains
            .iter()
            .map(|d| {
                std::fs::read_to_string(&d.energy_file)
                    .map_err(|e| EnergyError::RaplRead {
                        path: d.energy_file.clone(),
                        reason: e.to_string(),
                    })?
                    .trim()
                    .parse::<u64>()
                    .map_err(|e| EnergyError::RaplValue {
                        path: d.energy_file.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RaplReading)
    }

    /// Joules between two readings, each counter's wrap-around handled (at most one wrap
    /// per domain between readings: minutes to hours at package power).
    pub fn joules_between(&self, start: &RaplReading, end: &RaplReading) -> f64 {
        self.domains
            .iter()
            .zip(start.0.iter().zip(&end.0))
            .map(|(d, (&a, &b))| counter_delta(a, b, d.max_range_uj) as f64 * 1e-6)
            .sum()
    }
}

/// Difference of a counter that wraps to zero after `max_range`.
pub fn counter_delta(start: u64, end: u64, max_range: u64) -> u64 {
    if end >= start {
        end - start
    } else {
        (max_range - start) + end
    }
}

/// NVIDIA's management library, loaded at run time: absent on most machines, never fatal.
pub mod nvml {
    use super::{EnergyError, GpuMemoryReading};
    use nvml_wrapper::enums::device::UsedGpuMemory;
    use nvml_wrapper::Nvml;

    pub struct Gpu {
        nvml: Nvml,
        index: u32,
    }

    impl Gpu {
        /// `Err` says why NVML cannot be used (library missing, no such device).
        pub fn open(index: usize) -> Result<Gpu, EnergyError> {
            let nvml = Nvml::init().map_err(|e| EnergyError::NvmlAbsent(e.to_string()))?;
            nvml.device_by_index(index as u32)
                .map_err(|e| EnergyError::NoGpu {
                    index,
                    reason: e.to_string(),
                })?;
            Ok(Gpu {
                nvml,
                index: index as u32,
            })
        }

        /// Total energy since the driver loaded, millijoules (Volta and newer).
        pub fn energy_mj(&self) -> Result<u64, EnergyError> {
            let device = self
                .nvml
                .device_by_index(self.index)
                .map_err(|e| EnergyError::Nvml(e.to_string()))?;
            device
                .total_energy_consumption()
                .map_err(|e| EnergyError::NvmlCounter(e.to_string()))
        }

        pub fn memory(&self) -> Result<GpuMemoryReading, EnergyError> {
            let nvml = |e: nvml_wrapper::error::NvmlError| EnergyError::Nvml(e.to_string());
            let device = self.nvml.device_by_index(self.index).map_err(nvml)?;
            let info = device.memory_info().map_err(nvml)?;
            let pid = std::process::id();
            let process_used = device.running_compute_processes().ok().and_then(|ps| {
                ps.into_iter()
                    .find(|p| p.pid == pid)
                    .and_then(|p| match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => Some(b),
                        UsedGpuMemory::Unavailable => None,
                    })
            });
            Ok(GpuMemoryReading {
                device_used: info.used,
                device_total: info.total,
                process_used,
            })
        }
    }

    /// Whether NVML loads here, for `inferbench env`.
    pub fn availability() -> String {
        match Nvml::init() {
            Ok(nvml) => match nvml.device_count() {
                Ok(n) => format!(
                    "available, {n} GPU(s), driver {}",
                    nvml.sys_driver_version().unwrap_or_default()
                ),
                Err(e) => format!("loaded, but no device count: {e}"),
            },
            Err(e) => format!("not available ({e})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuMemoryReading {
    pub device_used: u64,
    pub device_total: u64,
    pub process_used: Option<u64>,
}

/// Measures idle power with a counter over `duration` (nothing of ours running).
pub fn rapl_idle_watts(rapl: &Rapl, duration: std::time::Duration) -> Option<f64> {
    let a = rapl.read().ok()?;
    let t = std::time::Instant::now();
    std::thread::sleep(duration);
    let b = rapl.read().ok()?;
    Some(rapl.joules_between(&a, &b) / t.elapsed().as_secs_f64())
}

/// Measures a GPU's idle power with NVML's energy counter over `duration`.
pub fn nvml_idle_watts(gpu: &nvml::Gpu, duration: std::time::Duration) -> Option<f64> {
    let a = gpu.energy_mj().ok()?;
    let t = std::time::Instant::now();
    std::thread::sleep(duration);
    let b = gpu.energy_mj().ok()?;
    Some(b.saturating_sub(a) as f64 / 1000.0 / t.elapsed().as_secs_f64())
}

/// The TDP estimate for a window that used `cpu_time_s` of CPU.
pub fn estimate_from_cpu_time(cpu_time_s: f64, tdp: &Tdp) -> (f64, TdpEstimate) {
    let watts_per_cpu_second = tdp.watts / tdp.threads.max(1.0);
    let joules = cpu_time_s * watts_per_cpu_second;
    (
        joules,
        TdpEstimate {
            cpu_time_s,
            tdp_watts: tdp.watts,
            tdp_threads: tdp.threads,
            watts_per_cpu_second,
            source: tdp.source.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EnergyInfo, EnergyMethod};
    use std::fs;

    fn zone(root: &Path, zone: &str, name: &str, uj: u64, max: u64) {
        let dir = root.join(zone);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        fs::write(dir.join("energy_uj"), format!("{uj}\n")).unwrap();
        fs::write(dir.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
    }

    #[test]
    fn rapl_sums_packages_and_dram_and_handles_wrap_around() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        zone(root, "intel-rapl:0", "package-0", 1_000_000, 10_000_000);
        zone(root, "intel-rapl:0:0", "core", 500, 10_000_000); // inside the package: not summed
        zone(root, "intel-rapl:0:1", "dram", 200_000, 5_000_000);
        let rapl = Rapl::open(root).unwrap();
        assert_eq!(rapl.domain_names(), ["package-0", "dram"]);
        let a = rapl.read().unwrap();
        // The package counter wraps: 1.0 J -> max 10.0 J -> 0.5 J is 9.5 J.
        fs::write(root.join("intel-rapl:0/energy_uj"), "500000\n").unwrap();
        fs::write(root.join("intel-rapl:0:1/energy_uj"), "700000\n").unwrap();
        let b = rapl.read().unwrap();
        let joules = rapl.joules_between(&a, &b);
        assert!((joules - (9.5 + 0.5)).abs() < 1e-9, "{joules}");
    }

    #[test]
    fn rapl_that_cannot_be_read_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Rapl::open(&tmp.path().join("absent"))
            .unwrap_err()
            .to_string()
            .contains("not present"));
        // Tests run as root here, where file permissions are not enforced, so an unreadable
        // counter is simulated by a directory in its place: reading it fails the same way.
        let dir = tmp.path().join("intel-rapl:0");
        fs::create_dir_all(dir.join("energy_uj")).unwrap();
        fs::write(dir.join("name"), "package-0").unwrap();
        let err = Rapl::open(tmp.path()).unwrap_err();
        assert!(
            matches!(err, EnergyError::RaplUnreadable { .. })
                && err.to_string().contains("exists but is not readable"),
            "{err}"
        );
    }

    #[test]
    fn counter_delta_without_and_with_wrap() {
        assert_eq!(counter_delta(10, 25, 100), 15);
        assert_eq!(counter_delta(90, 5, 100), 15);
    }

    #[test]
    fn tdp_comes_from_suite_then_table_then_default() {
        let t = choose_tdp("AMD EPYC 7763 64-Core Processor", 2, Some(100.0), Some(4.0));
        assert_eq!((t.watts, t.threads), (100.0, 4.0));
        assert!(t.source.starts_with("suite"));
        let t = choose_tdp("AMD EPYC 7763 64-Core Processor", 2, None, None);
        assert_eq!(
            (t.watts, t.threads, t.source.as_str()),
            (280.0, 128.0, "table: EPYC 7763")
        );
        let t = choose_tdp("AMD EPYC", 2, None, None);
        assert_eq!((t.watts, t.threads), (2.0 * DEFAULT_WATTS_PER_THREAD, 2.0));
        assert!(
            t.source.starts_with("default") && t.source.contains("AMD EPYC"),
            "{}",
            t.source
        );
    }

    #[test]
    fn estimate_is_labelled_and_keeps_its_inputs() {
        let tdp = Tdp {
            watts: 40.0,
            threads: 8.0,
            source: "suite (settings.tdp_watts)".into(),
        };
        let (joules, est) = estimate_from_cpu_time(2.0, &tdp);
        assert_eq!(joules, 10.0);
        let mut info = EnergyInfo::new(EnergyMethod::EstimateTdp, joules, None, 1.0, 100);
        info.estimate = Some(est);
        assert_eq!(serde_json::to_value(info.method).unwrap(), "estimate-tdp");
        assert!(info.method.is_estimate());
        assert_eq!(info.joules_per_inference, 0.1);
        assert_eq!(info.inferences_per_joule, 10.0);
        assert_eq!(info.avg_watts, 10.0);
        let est = info.estimate.unwrap();
        assert_eq!(
            (
                est.cpu_time_s,
                est.tdp_watts,
                est.tdp_threads,
                est.watts_per_cpu_second
            ),
            (2.0, 40.0, 8.0, 5.0)
        );
    }

    #[test]
    fn idle_power_is_subtracted_and_raw_kept() {
        let info = EnergyInfo::new(EnergyMethod::Rapl, 30.0, Some(10.0), 2.0, 10);
        assert_eq!(
            (info.joules_raw, info.joules, info.joules_per_inference),
            (30.0, 10.0, 1.0)
        );
    }

    #[test]
    fn process_cpu_time_advances_with_work() {
        let a = process_cpu_time_s();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i * i));
        }
        assert!(process_cpu_time_s() > a);
    }

    #[test]
    fn nvml_absence_is_reported_not_fatal() {
        // On machines without the NVIDIA driver this must be a message, never a panic.
        let s = nvml::availability();
        assert!(!s.is_empty());
        if !s.starts_with("available") {
            assert!(nvml::Gpu::open(0).is_err());
        }
    }
}
