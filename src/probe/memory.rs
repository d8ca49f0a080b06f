//! Memory figures: resident set size from /proc, and a counting global allocator for the
//! peak heap of a measured window.
//!
//! The binary installs `CountingAllocator` as its global allocator. Counting is off by
//! default: the cost per allocation is then one relaxed atomic load. The worker turns it on
//! only for a separate heap pass after the latency samples are taken (one pass per metric,
//! as optimum-benchmark does), so the atomics never run inside the latency window.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// What a case used, measured in its worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Resident set size of the worker before the model was built (runtime, libraries, input).
    pub rss_before_load_bytes: u64,
    /// Resident set size right after the model was built.
    pub rss_after_load_bytes: u64,
    /// Peak resident set size of the worker over its whole life (VmHWM): the case's own peak.
    pub peak_rss_bytes: u64,
    /// Largest amount of heap live at once during the heap pass, above what was live when the
    /// pass started (so the weights and inputs are excluded): the forward pass's working memory.
    pub peak_heap_bytes: Option<u64>,
    /// Forward passes in the heap pass.
    pub heap_pass_iterations: u64,
    /// Bytes of the weights in memory at their dtype.
    pub weight_bytes: u64,
    /// GPU memory for CUDA targets (NVML and the CUDA driver through candle's context).
    pub gpu: Option<GpuMemory>,
}

/// Device memory of a CUDA case. Two independent views, each absent where it cannot be read:
/// NVML's (per process and device-wide) and the CUDA driver's through candle's own context
/// (`cuMemGetInfo`: total minus free, device-wide), the latter also before the model was built
/// so the model's share is visible, as with RSS. All are point readings, not peaks: candle
/// frees a tensor's device memory when the tensor is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuMemory {
    /// Device memory used by this worker process, as NVML reports it, after the heap pass.
    pub process_used_bytes: Option<u64>,
    /// Device memory used on the whole device (NVML), after the heap pass.
    pub device_used_bytes: Option<u64>,
    pub device_total_bytes: Option<u64>,
    /// Used on the device as candle's CUDA context sees it, before the model was built.
    #[serde(default)]
    pub context_used_before_load_bytes: Option<u64>,
    /// ... right after the model was built.
    #[serde(default)]
    pub context_used_after_load_bytes: Option<u64>,
    /// ... after the heap pass (the last forward passes of the case).
    #[serde(default)]
    pub context_used_after_run_bytes: Option<u64>,
    /// Why a view is missing (NVML not loadable, the driver call failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Device memory in use (total minus free) as the CUDA driver reports it for candle's
/// context on `device`; `None` on the CPU or in a build without the `cuda` feature.
pub fn cuda_context_used_bytes(device: &candle_core::Device) -> Result<Option<u64>, String> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(cuda) = device {
        let (free, total) = cuda
            .cuda_stream()
            .context()
            .mem_get_info()
            .map_err(|e| format!("cuMemGetInfo failed: {e}"))?;
        return Ok(Some(total.saturating_sub(free) as u64));
    }
    let _ = device;
    Ok(None)
}

/// A kB field of a /proc status file, in bytes.
fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
}

/// Current resident set size of process `pid` ("self" for this one), if /proc has it.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "VmRSS:")
}

/// Peak resident set size of this process so far.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field(&status, "VmHWM:")
}

/// The system allocator, counting live bytes while a window is open.
pub struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes as isize, Relaxed) + bytes as isize;
    PEAK.fetch_max(now, Relaxed);
}

#[inline]
fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Relaxed) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Opens a heap window: live and peak counts restart at zero (frees of older memory count
/// as negative), so the peak is the largest growth above the level at the start.
pub fn start_heap_window() {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
}

/// Closes the window and returns its peak growth in bytes.
pub fn end_heap_window() -> u64 {
    COUNTING.store(false, Relaxed);
    PEAK.load(Relaxed).max(0) as u64
}

/// Whether `CountingAllocator` is this process's global allocator (a probe allocation moves
/// the counters only if it is). Without it, `peak_heap_bytes` is reported as absent.
pub fn counting_allocator_installed() -> bool {
    start_heap_window();
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let seen = PEAK.load(Relaxed) >= 4096;
    drop(probe);
    end_heap_window();
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kb_fields_of_proc_status() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(1024 * 1024));
        assert_eq!(status_field(status, "VmHWM:"), Some(2048 * 1024));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_an_rss() {
        let rss = rss_bytes("self").unwrap();
        assert!(rss > 0 && peak_rss_bytes().unwrap() >= rss);
    }
}
