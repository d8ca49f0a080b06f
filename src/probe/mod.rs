//! Collectors beside the timing: environment fingerprint, machine state and load, memory
//! (RSS, counting allocator) and energy (RAPL, NVML, TDP estimate).
pub mod energy;
pub mod env;
pub mod memory;
pub mod state;
