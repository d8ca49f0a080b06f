//! The LLM server on the wall clock: bounded run time under overload, latencies at low load,
//! the search against a model of known service time, and no allocation inside the window.
//!
//! Timing-sensitive, so a test binary of its own whose tests take turns (a lock), and bounds
//! generous enough for a shared machine. Run alone with
//! `cargo test --test llm_server_timing -- --test-threads=1`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use inferbench::llm::bench::{LlmBench, LlmTest};
use inferbench::llm::decoder::{Decoder, NullDecoder};
use inferbench::llm::server::{
    find_max_qps, prompts, run_probe, serve, LlmFindMax, LlmProbeRaw, LlmRequest, LlmServeConfig,
    LlmServerLoad, LlmServerTarget,
};
use inferbench::llm::LlmError;
use inferbench::measure::server::{poisson_schedule, DROPPED, UNSERVED};
use inferbench::schema::SearchEnd;
use inferbench::stats;

/// Counts the allocations of the threads that ask it to.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations this thread makes while `f` runs.
fn allocations_in<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed) - before, out)
}

/// The tests take turns: each measures wall-clock time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake model of known service time: its prefill and each step hold the thread for a fixed
/// time, spinning on the clock (a sleeping thread wakes late).
struct SpinModel {
    inner: NullDecoder,
    prefill: Duration,
    step: Duration,
}

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        spin_loop();
    }
}

impl Decoder for SpinModel {
    type Input = usize;
    type Logits = usize;
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn check_context(&self, positions: usize) -> Result<(), LlmError> {
        self.inner.check_context(positions)
    }
    fn reset(&mut self) {
        self.inner.reset()
    }
    fn input(&self, tokens: &[u32]) -> Result<usize, LlmError> {
        self.inner.input(tokens)
    }
    fn extend(&mut self, input: &usize) -> Result<usize, LlmError> {
        spin(self.prefill);
        self.inner.extend(input)
    }
    fn decode_step(&mut self, input: &usize) -> Result<usize, LlmError> {
        spin(self.step);
        self.inner.decode_step(input)
    }
    fn synchronize(&self) -> Result<(), LlmError> {
        Ok(())
    }
    fn greedy(&self, logits: &usize) -> Result<u32, LlmError> {
        self.inner.greedy(logits)
    }
}

fn spin_model(prefill_ms: f64, step_ms: f64) -> SpinModel {
    SpinModel {
        inner: NullDecoder::new(1000, 4096),
        prefill: Duration::from_secs_f64(prefill_ms / 1e3),
        step: Duration::from_secs_f64(step_ms / 1e3),
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    stats::percentile(&v, 0.5)
}

/// The harness's own code allocates nothing per request or per token: a server run allocates
/// the same (its buffers, before the window) for 10 requests of 4 tokens as for 2,000 of 64,
/// and a benchmark repetition allocates nothing at all, with a model that does no work.
#[test]
fn the_window_allocates_nothing_per_request_or_token() {
    let _turn = serial();
    let mut model = NullDecoder::new(1000, 4096);
    let mut run = |n: usize, m: usize| {
        let arrivals = vec![0u64; n];
        let inputs = prompts(&model, 16, n, 1).unwrap();
        let cfg = LlmServeConfig {
            output_tokens: m,
            max_queue: None,
            duration: Duration::from_secs(1),
            drain: Duration::from_secs(1),
        };
        let (allocs, rec) = allocations_in(|| serve(&mut model, &inputs, &arrivals, &cfg));
        assert!(rec.unwrap().start_ns.iter().all(|&s| s != UNSERVED));
        allocs
    };
    let small = run(10, 4);
    let large = run(2000, 64);
    assert_eq!(small, large, "allocations grow with requests or tokens");
    assert!(small <= 4, "{small} allocations: the four buffers at most");

    for test in [
        LlmTest::Decode {
            depth: 0,
            new_tokens: 1000,
        },
        LlmTest::Generate {
            prompt: 64,
            new_tokens: 1000,
        },
    ] {
        let mut b = LlmBench::new(&mut model, test, 1).unwrap();
        b.run().unwrap();
        let (allocs, r) = allocations_in(|| b.run());
        r.unwrap();
        assert_eq!(allocs, 0, "{}", test.label());
    }
}

/// 10x the capacity of a 4 ms request with a queue of 8: requests are dropped, the rest are
/// served or unserved, and the run ends when the request in flight at the deadline does.
#[test]
fn far_above_capacity_ends_within_duration_drain_and_one_request() {
    let _turn = serial();
    let mut model = spin_model(2.0, 1.0);
    let arrivals = poisson_schedule(2_500.0, 0.3, 7);
    let inputs = prompts(&model, 16, arrivals.len(), 1).unwrap();
    let cfg = LlmServeConfig {
        output_tokens: 3,
        max_queue: Some(8),
        duration: Duration::from_millis(300),
        drain: Duration::from_millis(100),
    };
    let t = Instant::now();
    let rec = serve(&mut model, &inputs, &arrivals, &cfg).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let p = LlmProbeRaw::from_record(2_500.0, 0.3, &arrivals, &rec);
    assert_eq!(p.served + p.dropped + p.unserved, arrivals.len());
    assert!(p.dropped > arrivals.len() / 2, "{} dropped", p.dropped);
    assert!(p.saturated());
    // The last request started before the deadline and the dispatcher stopped right after it.
    let deadline = 400_000_000;
    let last = (0..arrivals.len())
        .rev()
        .find(|&i| rec.start_ns[i] != DROPPED && rec.start_ns[i] != UNSERVED)
        .unwrap();
    assert!(rec.start_ns[last] < deadline);
    let done = rec.token_times(last)[2];
    assert!(rec.end_ns >= done && rec.end_ns - done < 5_000_000);
    // Bounded: duration + drain + one request (4 ms), with slack for a busy machine.
    assert!(wall < 0.4 + 0.004 + 0.25, "took {wall} s");
}

/// Pairs of requests 1 µs apart, the pairs 200 ms apart (a 7 ms request): the first of each
/// pair finds the server idle, the second waits for it.
/// - The second starts as soon as the first ends: the dispatcher's own gap (clock reads and
///   bookkeeping, no waiting) is far under a millisecond. Its TTFT is its queueing (the
///   first's whole request) plus its own service.
/// - The first starts right after the dispatcher's idle wait for it ends: its queueing is that
///   wake-up's lateness (recorded as `idle_lag`) plus the same small gap. The lateness itself
///   is the operating system's (the dispatcher sleeps until 1 ms before, then spins; on a
///   quiet machine it is microseconds, on an oversubscribed one it was measured at up to
///   10 ms), so it is not bounded here; `measure::server`'s tests check the spin on its own.
/// - Each request's service includes the model's work (lower bounds only: on a shared
///   machine preemption stretches the spinning model's 3 ms prefill and 1 ms steps).
#[test]
fn ttft_is_queueing_plus_service_and_the_dispatcher_adds_nothing() {
    let _turn = serial();
    let mut model = spin_model(3.0, 1.0);
    let arrivals: Vec<u64> = (0..5u64)
        .flat_map(|k| [k * 200_000_000 + 1_000_000, k * 200_000_000 + 1_001_000])
        .collect();
    let inputs = prompts(&model, 16, arrivals.len(), 1).unwrap();
    let cfg = LlmServeConfig {
        output_tokens: 5,
        max_queue: None,
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(1),
    };
    let rec = serve(&mut model, &inputs, &arrivals, &cfg).unwrap();
    let p = LlmProbeRaw::from_record(10.0, 1.0, &arrivals, &rec);
    assert_eq!(p.served, 10);
    let ms = |ns: u64| ns as f64 / 1e6;
    let (mut gaps, mut wakes) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let t = rec.token_times(i);
        let service_ttft_ms = ms(t[0] - rec.start_ns[i]);
        assert!(service_ttft_ms >= 3.0, "the prefill's 3 ms are in it");
        assert!(p.tpot_ms[i] >= 1.0, "the 1 ms step is in it");
        assert!((p.ttft_ms[i] - (p.queue_ms[i] + service_ttft_ms)).abs() < 1e-6);
        let from_parts = p.ttft_ms[i] + 4.0 * p.tpot_ms[i];
        assert!(
            (p.e2e_ms[i] - from_parts).abs() < 1e-6,
            "e2e = TTFT + (M - 1) TPOT"
        );
        if i % 2 == 1 {
            let first_done = rec.token_times(i - 1)[4];
            assert!(rec.start_ns[i] >= first_done);
            gaps.push(ms(rec.start_ns[i] - first_done));
            assert!(p.queue_ms[i] >= p.e2e_ms[i - 1] - 0.001);
        } else {
            wakes.push(p.queue_ms[i]);
        }
    }
    let gap = median(&gaps);
    assert!(gap < 0.2, "median dispatch gap {gap} ms");
    // One idle wait per pair (each pair is over long before the next arrives).
    assert_eq!(rec.idle_lag_ns.len(), 5, "{:?}", rec.start_ns);
    let after_wake: Vec<f64> = wakes
        .iter()
        .zip(&rec.idle_lag_ns)
        .map(|(&queue, &lag)| queue - ms(lag))
        .collect();
    assert!(after_wake.iter().all(|&d| d >= 0.0), "{after_wake:?}");
    let after_wake = median(&after_wake);
    assert!(
        after_wake < 0.2,
        "median start after the wake-up {after_wake} ms"
    );
}

/// The search end to end on the wall clock (real probes: schedules, sleep-then-spin, the
/// spinning model) with a 4 ms request (250/s). The exact bracketing is tested on a simulated
/// clock (`llm::server` unit tests); here, on a shared machine where preemption stretches the
/// work, only what holds under any stretch short of 50x: a rate passes (at the floor, 10/s,
/// the server is idle 96% of the time); no rate of twice the capacity passes (its backlog
/// after the 1 s schedule is a full second, twice the TTFT bound); the bracket is ordered,
/// and as tight as asked when the search converged.
#[test]
fn the_search_brackets_the_capacity_on_the_wall_clock() {
    let _turn = serial();
    let mut model = spin_model(2.0, 1.0);
    let capacity = 250.0;
    let f = LlmFindMax {
        ttft_p99_ms: 500.0,
        tpot_p99_ms: 100.0,
        precision: 0.15,
        max_probes: 7,
        min_requests: 10,
    };
    let load = LlmServerLoad {
        target: LlmServerTarget::FindMax(f.clone()),
        request: LlmRequest {
            prompt_tokens: 16,
            output_tokens: 3,
        },
        duration_s: 1.0,
        drain_s: 0.3,
        max_queue: None,
        seed: 11,
    };
    let s = find_max_qps(capacity, &f, load.duration_s, |rate| {
        run_probe(&mut model, &load, rate)
    })
    .unwrap();
    let rates: Vec<f64> = s.probes.iter().map(|p| p.target_qps).collect();
    let lo = s
        .passing_qps
        .unwrap_or_else(|| panic!("nothing passed: {rates:?}"));
    assert!(lo < 2.0 * capacity, "{lo}: {rates:?}");
    for (p, &passed) in s.probes.iter().zip(&s.passed) {
        assert_eq!(passed, p.passes(&f));
        assert_eq!(p.served + p.dropped + p.unserved, p.requests);
    }
    match s.end {
        SearchEnd::Converged => {
            let hi = s.failing_qps.unwrap();
            assert!(hi > lo && hi / lo <= 1.15, "{rates:?}");
        }
        end => assert_eq!(
            (end, s.probes.len()),
            (SearchEnd::MaxProbes, 7),
            "{rates:?}"
        ),
    }
}
