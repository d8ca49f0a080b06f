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

/// At 14% load requests rarely queue and the dispatcher wakes on time: the median queueing is
/// far under a millisecond, so the median TTFT is the 3 ms prefill and the median TPOT the 1 ms
/// step. Those two are bounded loosely above: on a shared, oversubscribed machine the
/// spinning model is preempted (a 1 ms step was measured at 1.9 ms under a load average of 6
/// on 2 cores), which stretches the work, not the harness's part.
#[test]
fn below_capacity_ttft_is_the_prefill_and_tpot_the_step() {
    let _turn = serial();
    let mut model = spin_model(3.0, 1.0);
    let arrivals = poisson_schedule(20.0, 1.0, 3);
    let inputs = prompts(&model, 16, arrivals.len(), 1).unwrap();
    let cfg = LlmServeConfig {
        output_tokens: 5,
        max_queue: None,
        duration: Duration::from_secs(1),
        drain: Duration::from_millis(500),
    };
    let rec = serve(&mut model, &inputs, &arrivals, &cfg).unwrap();
    let p = LlmProbeRaw::from_record(20.0, 1.0, &arrivals, &rec);
    assert_eq!(p.served, arrivals.len());
    let queue = median(&p.queue_ms);
    assert!(queue < 0.5, "median queueing {queue} ms");
    let lag = p.idle_lag_p50_ms.unwrap();
    assert!(lag < 0.5, "median wake-up lag {lag} ms");
    let (ttft, tpot) = (median(&p.ttft_ms), median(&p.tpot_ms));
    assert!((3.0..9.0).contains(&ttft), "median TTFT {ttft} ms");
    assert!((1.0..3.0).contains(&tpot), "median TPOT {tpot} ms");
    for (i, &t) in p.ttft_ms.iter().enumerate() {
        let e2e = p.e2e_ms[i];
        let from_parts = t + 4.0 * p.tpot_ms[i];
        assert!((e2e - from_parts).abs() < 1e-6, "e2e = TTFT + (M - 1) TPOT");
    }
}

/// The search on the wall clock with a 4 ms request (250/s): the highest passing rate is under
/// the capacity and the bracket is as tight as asked.
#[test]
fn the_search_brackets_the_capacity_on_the_wall_clock() {
    let _turn = serial();
    let mut model = spin_model(2.0, 1.0);
    let capacity = 250.0;
    let f = LlmFindMax {
        ttft_p99_ms: 40.0,
        // Generous: the step is 1 ms, but a busy machine preempts the spinning thread.
        tpot_p99_ms: 5.0,
        precision: 0.1,
        max_probes: 8,
        min_requests: 20,
    };
    let load = LlmServerLoad {
        target: LlmServerTarget::FindMax(f.clone()),
        request: LlmRequest {
            prompt_tokens: 16,
            output_tokens: 3,
        },
        duration_s: 0.5,
        drain_s: 0.25,
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
    let hi = s
        .failing_qps
        .unwrap_or_else(|| panic!("nothing failed: {rates:?}"));
    assert!(lo < capacity && lo >= 0.25 * capacity, "{lo}: {rates:?}");
    assert!(hi > lo, "{rates:?}");
    if s.end == SearchEnd::Converged {
        assert!(hi / lo <= 1.1);
    } else {
        assert_eq!((s.end, s.probes.len()), (SearchEnd::MaxProbes, 8));
    }
}
