//! Memory figures: resident set size from /proc, and a counting global allocator for the
//! peak heap of a measured window.
//!
//! The binary installs `CountingAllocator` as its global allocator. Counting is off by
//! default: the cost per allocation is then one relaxed atomic load. The worker turns it on
//! only for a separate heap pass after the latency samples are taken (one pass per metric,
//! as optimum-benchmark does), so the atomics never run inside the latency window.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

/// The CUDA driver could not say how much device memory is in use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cuMemGetInfo failed: {0}")]
pub struct DeviceMemoryError(pub String);

/// Device memory in use (total minus free) as the CUDA driver reports it for candle's
/// context on `device`; `None` on the CPU or in a build without the `cuda` feature.
pub fn cuda_context_used_bytes(
    device: &candle_core::Device,
) -> Result<Option<u64>, DeviceMemoryError> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(cuda) = device {
        let (free, total) = cuda
            .cuda_stream()
            .context()
            .mem_get_info()
            .map_err(|e| DeviceMemoryError(e.to_string()))?;
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
