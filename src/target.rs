//! Targets: where a case runs (device and CPU thread count) and whether it can run here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Cuda(usize),
}

/// A device name that does not parse, or cores a worker cannot be pinned to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}`: the CUDA ordinal must be a number, as in `cuda:0`")]
    CudaOrdinal(String),
    #[error("unknown device `{0}`; use `cpu` or `cuda:N`")]
    UnknownDevice(String),
    #[error("core {0} is beyond what the affinity call can name")]
    CoreOutOfRange(usize),
    #[error("sched_setaffinity({cores:?}): {reason}")]
    Affinity { cores: Vec<usize>, reason: String },
    #[error("pinning to cores {0:?} needs Linux's sched_setaffinity")]
    PinningUnsupported(Vec<usize>),
}

impl FromStr for DeviceKind {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, TargetError> {
        if s == "cpu" {
            return Ok(DeviceKind::Cpu);
        }
        if let Some(ordinal) = s.strip_prefix("cuda:") {
            return ordinal
                .parse()
                .map(DeviceKind::Cuda)
                .map_err(|_| TargetError::CudaOrdinal(s.to_string()));
        }
        if s == "cuda" {
            return Ok(DeviceKind::Cuda(0));
        }
        Err(TargetError::UnknownDevice(s.to_string()))
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => write!(f, "cpu"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// One concrete target of the plan: a device and the CPU threads the worker may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Label used in case ids: `cpu-t2`, `cuda0-t1`, or the suite's `name` plus `-t<threads>`.
    pub label: String,
    pub device: DeviceKind,
    pub threads: usize,
    /// CPU cores the worker is pinned to (operating-system affinity), if the suite names any.
    #[serde(default)]
    pub cores: Option<Vec<usize>>,
    /// Memory cap for this target's workers (overrides `settings.max_rss_mb`).
    #[serde(default)]
    pub max_rss_mb: Option<u64>,
}

impl Target {
    pub fn new(name: Option<&str>, device: DeviceKind, threads: usize) -> Self {
        let base = match (name, device) {
            (Some(name), _) => name.to_string(),
            (None, DeviceKind::Cpu) => "cpu".to_string(),
            (None, DeviceKind::Cuda(n)) => format!("cuda{n}"),
        };
        Target {
            label: format!("{base}-t{threads}"),
            device,
            threads,
            cores: None,
            max_rss_mb: None,
        }
    }

    /// Environment for the worker process. candle's kernels read these when the process
    /// starts, which is why each case gets a fresh process (docs/methodology.md, "How a case is
    /// measured").
    pub fn worker_env(&self) -> Vec<(&'static str, String)> {
        let n = self.threads.to_string();
        vec![
            ("RAYON_NUM_THREADS", n.clone()),
            ("CANDLE_NUM_THREADS", n.clone()),
            ("OMP_NUM_THREADS", n),
        ]
    }

    /// Why a case on this target cannot run in this build, if it cannot.
    pub fn unavailable_reason(&self) -> Option<String> {
        match self.device {
            DeviceKind::Cpu => None,
            DeviceKind::Cuda(_) if !cfg!(feature = "cuda") => Some(
                "inferbench was built without the `cuda` feature (cargo build --features cuda)"
                    .into(),
            ),
            DeviceKind::Cuda(_) => None,
        }
    }

    /// The candle device; only the worker calls this.
    pub fn candle_device(&self) -> candle_core::Result<candle_core::Device> {
        match self.device {
            DeviceKind::Cpu => Ok(candle_core::Device::Cpu),
            DeviceKind::Cuda(n) => candle_core::Device::new_cuda(n),
        }
    }
}

/// The CPU cores this process may run on (its affinity mask), in ascending order.
pub fn available_cores() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; sched_getaffinity fills the set we own.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                return (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect();
            }
        }
    }
    (0..std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1))
        .collect()
}

/// Pins this process (and the threads it creates afterwards) to `cores`; returns the
/// affinity in effect afterwards, as the operating system reports it.
pub fn pin_to_cores(cores: &[usize]) -> Result<Vec<usize>, TargetError> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; CPU_SET only writes bits inside it, for indices
        // below CPU_SETSIZE, checked first.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cores {
                if c >= libc::CPU_SETSIZE as usize {
                    return Err(TargetError::CoreOutOfRange(c));
                }
                libc::CPU_SET(c, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(TargetError::Affinity {
                    cores: cores.to_vec(),
                    reason: std::io::Error::last_os_error().to_string(),
                });
            }
        }
        Ok(available_cores())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(TargetError::PinningUnsupported(cores.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_labels_targets() {
        assert_eq!("cpu".parse::<DeviceKind>(), Ok(DeviceKind::Cpu));
        assert_eq!("cuda:1".parse::<DeviceKind>(), Ok(DeviceKind::Cuda(1)));
        let e = "tpu".parse::<DeviceKind>().unwrap_err();
        assert_eq!(e, TargetError::UnknownDevice("tpu".into()));
        assert!(e.to_string().contains("unknown device `tpu`"));
        assert_eq!(
            "cuda:x".parse::<DeviceKind>(),
            Err(TargetError::CudaOrdinal("cuda:x".into()))
        );
        assert_eq!(Target::new(None, DeviceKind::Cpu, 2).label, "cpu-t2");
        assert_eq!(
            Target::new(Some("edge"), DeviceKind::Cpu, 1).label,
            "edge-t1"
        );
        assert_eq!(Target::new(None, DeviceKind::Cuda(0), 1).label, "cuda0-t1");
    }

    #[test]
    fn cuda_is_unavailable_without_the_feature() {
        let t = Target::new(None, DeviceKind::Cuda(0), 1);
        assert_eq!(t.unavailable_reason().is_some(), !cfg!(feature = "cuda"));
        assert_eq!(
            Target::new(None, DeviceKind::Cpu, 1).unavailable_reason(),
            None
        );
    }
}
