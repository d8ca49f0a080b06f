//! Machine state that explains noisy numbers: frequency scaling, temperatures,
//! virtualisation, and what else was running before and during each case.

use std::path::Path;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::schema::{LoadSnapshot, MachineState, ProcessLoad, ThermalZone};

/// The machine state now.
pub fn capture() -> MachineState {
    capture_from(
        Path::new("/sys"),
        &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
    )
}

/// Reads from a sysfs root and a cpuinfo text (tests give fakes).
pub fn capture_from(sys: &Path, cpuinfo: &str) -> MachineState {
    let cpufreq = sys.join("devices/system/cpu/cpu0/cpufreq");
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let khz_to_mhz = |p: &Path| {
        read(p)
            .and_then(|s| s.parse::<f64>().ok())
            .map(|khz| khz / 1000.0)
    };
    // Without cpufreq (most VMs), /proc/cpuinfo still has the current clock.
    let cpuinfo_mhz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse::<f64>().ok());
    let mut thermal = Vec::new();
    if let Ok(entries) = std::fs::read_dir(sys.join("class/thermal")) {
        let mut dirs: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for dir in dirs {
            let zone = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if !zone.starts_with("thermal_zone") {
                continue;
            }
            if let Some(milli) = read(&dir.join("temp")).and_then(|s| s.parse::<f64>().ok()) {
                let kind = read(&dir.join("type")).unwrap_or_default();
                thermal.push(ThermalZone {
                    zone,
                    kind,
                    celsius: milli / 1000.0,
                });
            }
        }
    }
    MachineState {
        governor: read(&cpufreq.join("scaling_governor")),
        cur_freq_mhz: khz_to_mhz(&cpufreq.join("scaling_cur_freq")).or(cpuinfo_mhz),
        max_freq_mhz: khz_to_mhz(&cpufreq.join("cpuinfo_max_freq")),
        thermal,
        virtualization: virtualization(cpuinfo),
    }
}

fn virtualization(cpuinfo: &str) -> Option<String> {
    // systemd-detect-virt names the hypervisor; the CPU flag only says there is one.
    if let Ok(out) = std::process::Command::new("systemd-detect-virt").output() {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !name.is_empty() {
            return Some(name);
        }
    }
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or("");
    if flags.split_whitespace().any(|f| f == "hypervisor") {
        Some("unknown hypervisor".into())
    } else if flags.is_empty() {
        None
    } else {
        Some("none".into())
    }
}

/// Keeps process CPU counters between snapshots (CPU share needs two readings).
pub struct LoadSampler {
    system: System,
    me: Pid,
}

impl Default for LoadSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadSampler {
    pub fn new() -> Self {
        let mut sampler = LoadSampler {
            system: System::new(),
            me: Pid::from_u32(std::process::id()),
        };
        sampler.refresh();
        sampler
    }

    fn refresh(&mut self) {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_cpu(),
        );
    }

    pub fn snapshot(&mut self) -> LoadSnapshot {
        self.refresh();
        let mut top: Vec<ProcessLoad> = self
            .system
            .processes()
            .iter()
            .filter(|(pid, p)| {
                **pid != self.me && p.parent() != Some(self.me) && p.cpu_usage() > 0.5
            })
            .map(|(pid, p)| ProcessLoad {
                pid: pid.as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                cpu_percent: p.cpu_usage(),
            })
            .collect();
        top.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        top.truncate(5);
        let l = System::load_average();
        LoadSnapshot {
            load_average: [l.one, l.five, l.fifteen],
            top_processes: top,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_governor_frequency_and_thermal_from_a_fake_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let cpufreq = tmp.path().join("devices/system/cpu/cpu0/cpufreq");
        std::fs::create_dir_all(&cpufreq).unwrap();
        std::fs::write(cpufreq.join("scaling_governor"), "performance\n").unwrap();
        std::fs::write(cpufreq.join("scaling_cur_freq"), "2400000\n").unwrap();
        std::fs::write(cpufreq.join("cpuinfo_max_freq"), "3500000\n").unwrap();
        let zone = tmp.path().join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("temp"), "47500\n").unwrap();
        std::fs::write(zone.join("type"), "x86_pkg_temp\n").unwrap();
        let s = capture_from(tmp.path(), "flags : fpu sse2\ncpu MHz : 1200.0\n");
        assert_eq!(s.governor.as_deref(), Some("performance"));
        assert_eq!(
            (s.cur_freq_mhz, s.max_freq_mhz),
            (Some(2400.0), Some(3500.0))
        );
        assert_eq!(
            s.thermal,
            vec![ThermalZone {
                zone: "thermal_zone0".into(),
                kind: "x86_pkg_temp".into(),
                celsius: 47.5
            }]
        );
    }

    #[test]
    fn without_cpufreq_the_clock_comes_from_cpuinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let s = capture_from(
            tmp.path(),
            "flags : fpu hypervisor\ncpu MHz\t\t: 2596.144\n",
        );
        assert_eq!(s.governor, None);
        assert_eq!(s.cur_freq_mhz, Some(2596.144));
        assert!(s.thermal.is_empty());
        assert!(s.virtualization.is_some());
    }

    #[test]
    fn load_snapshot_excludes_this_process() {
        let mut sampler = LoadSampler::new();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = std::hint::black_box(x ^ i.wrapping_mul(31));
        }
        let snap = sampler.snapshot();
        assert!(snap
            .top_processes
            .iter()
            .all(|p| p.pid != std::process::id()));
        assert!(snap.load_average[0] >= 0.0);
    }
}
