//! Collectors beside the timing: the environment fingerprint (memory and energy come later).
pub mod env;
