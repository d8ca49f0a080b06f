//! The counting allocator's peak on a known allocation pattern. A test binary of its own with
//! a single test, so nothing else allocates while the window is open.

use inferbench::probe::memory::{self, CountingAllocator};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn peak_of_a_known_allocation_pattern() {
    const MIB: usize = 1 << 20;
    assert!(memory::counting_allocator_installed());
    let before = vec![1u8; 4 * MIB]; // live before the window: not counted

    memory::start_heap_window();
    let a = vec![1u8; MIB]; // live: 1 MiB
    let b = vec![2u8; 2 * MIB]; // live: 3 MiB  <- peak
    drop(a); // live: 2 MiB
    let c = vec![3u8; MIB / 2]; // live: 2.5 MiB
    drop(before); // frees older memory: live 2.5 - 4 = -1.5 MiB
    let mut d: Vec<u8> = Vec::with_capacity(MIB);
    d.resize(MIB, 4); // live: -0.5 MiB
    let peak = memory::end_heap_window();
    std::hint::black_box((&b, &c, &d));

    // Exactly 3 MiB from our vectors; the test harness may allocate a little meanwhile.
    assert!(peak >= (3 * MIB) as u64, "{peak}");
    assert!(peak < (3 * MIB + 64 * 1024) as u64, "{peak}");

    // Outside a window nothing is counted.
    let e = vec![0u8; 8 * MIB];
    std::hint::black_box(&e);
    memory::start_heap_window();
    assert!(memory::end_heap_window() < 64 * 1024);
}
