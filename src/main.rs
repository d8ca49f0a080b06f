//! `inferbench`: parse the command line, run, and map the outcome to an exit code.

/// Counts heap bytes during a worker's heap pass (off, at the cost of one relaxed load per
/// allocation, the rest of the time).
#[global_allocator]
static ALLOCATOR: inferbench::probe::memory::CountingAllocator =
    inferbench::probe::memory::CountingAllocator;

fn main() {
    std::process::exit(inferbench::cli::main());
}
