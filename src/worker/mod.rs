//! The isolated worker: every case runs in a fresh child process of this binary.
//!
//! Protocol: the parent starts `inferbench __worker` with the target's thread variables set,
//! in its own process group (so a terminal's Ctrl-C reaches only the parent), writes one
//! JSON `WorkerRequest` to its stdin and closes it. The worker answers on stdout with JSON
//! lines: any number of `progress` messages, then one `done` (the measurement) or `error`.
//! A crash, a non-zero exit, a missing answer, the case timeout or the memory limit make the
//! case `failed` with the reason; the parent never waits longer than the timeout.
//!
//! Inside the worker, one pass per metric: latency (energy counters read at the window's
//! edges), then a short heap pass with the counting allocator on; peak RSS is read last.

mod child;
mod llm_profile;
mod meter;
mod parent;
mod pipeline;
pub mod protocol;

pub use child::worker_main;
pub use parent::{run_in_worker, Outcome};
