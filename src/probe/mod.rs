//! Collectors beside the timing: environment fingerprint, machine state and load, memory
//! (RSS, counting allocator), energy (RAPL, NVML, TDP estimate) and what the scheduler did
//! to a worker (run-queue wait, involuntary switches).
pub mod energy;
pub mod env;
pub mod memory;
pub mod sched;
pub mod state;
