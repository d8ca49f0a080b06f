//! Tests of the LLM server: the dispatcher's logic on a simulated clock (exact, no wall-clock
//! time), and the real path on the tiny GGUF (structural checks only: these run in parallel
//! with other tests; timing checks live in `tests/llm_server_timing.rs`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use candle_core::Device;

use super::*;
use crate::llm::decoder::NullDecoder;
use crate::llm::model::{argmax, LlmModel};
use crate::llm::tiny::{write_temp, TinyLlama};
use crate::llm::tokens::random_tokens;
use crate::measure::server::{poisson_schedule, DROPPED, UNSERVED};

const MS: u64 = 1_000_000;

/// A clock that moves only when told: by a wait, or by the simulated model's work.
struct SimClock(Rc<Cell<u64>>);

impl Clock for SimClock {
    fn start(&mut self) {
        self.0.set(0);
    }
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
    fn wait_until(&mut self, target_ns: u64) {
        if target_ns > self.0.get() {
            self.0.set(target_ns);
        }
    }
}

/// A model whose prefill takes `prefill_ns` and each step `step_ns` of simulated time.
struct SimModel {
    inner: NullDecoder,
    clock: Rc<Cell<u64>>,
    prefill_ns: u64,
    step_ns: u64,
}

impl Decoder for SimModel {
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
        self.clock.set(self.clock.get() + self.prefill_ns);
        self.inner.extend(input)
    }
    fn decode_step(&mut self, input: &usize) -> Result<usize, LlmError> {
        self.clock.set(self.clock.get() + self.step_ns);
        self.inner.decode_step(input)
    }
    fn synchronize(&self) -> Result<(), LlmError> {
        Ok(())
    }
    fn greedy(&self, logits: &usize) -> Result<u32, LlmError> {
        self.inner.greedy(logits)
    }
}

fn sim(prefill_ns: u64, step_ns: u64) -> (SimClock, SimModel) {
    let t = Rc::new(Cell::new(0));
    let model = SimModel {
        inner: NullDecoder::new(1000, 4096),
        clock: t.clone(),
        prefill_ns,
        step_ns,
    };
    (SimClock(t), model)
}

fn serve_cfg(
    m: usize,
    max_queue: Option<usize>,
    duration_ms: u64,
    drain_ms: u64,
) -> LlmServeConfig {
    LlmServeConfig {
        output_tokens: m,
        max_queue,
        duration: Duration::from_millis(duration_ms),
        drain: Duration::from_millis(drain_ms),
    }
}

fn sim_serve(
    prefill_ns: u64,
    step_ns: u64,
    arrivals: &[u64],
    cfg: &LlmServeConfig,
) -> LlmServeRecord {
    let (mut clock, mut model) = sim(prefill_ns, step_ns);
    let inputs = prompts(&model, 8, arrivals.len(), 1).unwrap();
    serve_on(&mut clock, &mut model, &inputs, arrivals, cfg).unwrap()
}

/// Worked by hand: a 2 ms prefill and 1 ms steps, 3 tokens (4 ms per request), arrivals at
/// 0, 1, 1.5 and 50 ms. The second and third queue behind the first; the fourth finds the
/// server idle.
#[test]
fn ttft_tpot_and_queueing_follow_their_definitions() {
    let arrivals = [0, MS, 3 * MS / 2, 50 * MS];
    let rec = sim_serve(2 * MS, MS, &arrivals, &serve_cfg(3, None, 60, 10));
    assert_eq!(rec.start_ns, [0, 4 * MS, 8 * MS, 50 * MS]);
    assert_eq!(rec.token_times(1), [6 * MS, 7 * MS, 8 * MS]);
    assert_eq!(rec.token_times(3), [52 * MS, 53 * MS, 54 * MS]);
    // The null model samples its position: 8 prompt tokens, then one more per step.
    assert_eq!(rec.generated(2), [8, 9, 10]);
    assert_eq!(rec.end_ns, 54 * MS);
    assert_eq!(rec.idle_lag_ns, [0], "one idle wait, on time (simulated)");

    let p = LlmProbeRaw::from_record(40.0, 0.06, &arrivals, &rec);
    assert_eq!((p.served, p.dropped, p.unserved), (4, 0, 0));
    assert_eq!(p.ttft_ms, [2.0, 5.0, 8.5, 2.0]);
    assert_eq!(p.queue_ms, [0.0, 3.0, 6.5, 0.0]);
    assert_eq!(p.e2e_ms, [4.0, 7.0, 10.5, 4.0]);
    // Queueing before the first token cancels out of TPOT: (e2e - TTFT) / (M - 1).
    assert_eq!(p.tpot_ms, [1.0, 1.0, 1.0, 1.0]);
    assert_eq!(p.end_s, 0.054);
    // 4 requests over max(60 ms schedule, 54 ms): 66.7/s, 3 tokens each.
    assert!((p.achieved_qps() - 4.0 / 0.06).abs() < 1e-9);
    assert!((p.generated_tokens_per_s() - 12.0 / 0.06).abs() < 1e-9);
    assert!((p.offered_qps() - 4.0 / 0.06).abs() < 1e-9);
    assert!(!p.saturated());
}

/// A burst into a queue of 3 with a 4 ms request, the schedule over at 1 ms and serving
/// stopped at 1 + 10 ms: the first is served at once; at 4 ms three of the other 19 are
/// queued and 16 dropped; two more are served (to 12 ms), and the one still waiting at the
/// deadline is unserved. The run ends within the deadline plus one request.
#[test]
fn a_bounded_queue_drops_and_the_deadline_leaves_requests_unserved() {
    let arrivals: Vec<u64> = (0..20).map(|i| i * 1_000).collect();
    let rec = sim_serve(2 * MS, MS, &arrivals, &serve_cfg(3, Some(3), 1, 10));
    let p = LlmProbeRaw::from_record(20_000.0, 0.001, &arrivals, &rec);
    assert_eq!((p.served, p.dropped, p.unserved), (3, 16, 1));
    assert_eq!(&rec.start_ns[..4], &[0, 4 * MS, 8 * MS, UNSERVED]);
    assert!(rec.start_ns[4..].iter().all(|&s| s == DROPPED));
    assert_eq!(rec.end_ns, 12 * MS);
    assert!(p.saturated());
    assert!(p.ttft_ms.iter().all(|&t| t > 0.0));
    assert_eq!(
        rec.generated(3),
        [0, 0, 0],
        "an unserved request generated nothing"
    );
}

/// Over Poisson schedules from far below to far above capacity (4 ms requests: 250/s), with
/// and without a bounded queue: every request is served, dropped or unserved; service starts
/// after arrival and in arrival order; TTFT is at least the request's own prefill; the run
/// ends within the deadline plus one request; no buffer grew inside the window.
#[test]
fn accounting_holds_at_every_load() {
    for rate in [20.0, 200.0, 1_000.0, 20_000.0] {
        for max_queue in [None, Some(4)] {
            let arrivals = poisson_schedule(rate, 0.5, 3);
            let cfg = serve_cfg(3, max_queue, 500, 100);
            let rec = sim_serve(2 * MS, MS, &arrivals, &cfg);
            let p = LlmProbeRaw::from_record(rate, 0.5, &arrivals, &rec);
            let at = format!("{rate}/s, queue {max_queue:?}");
            assert_eq!(p.served + p.dropped + p.unserved, arrivals.len(), "{at}");
            assert!(
                rec.end_ns <= 600 * MS + 4 * MS,
                "{at}: ended at {}",
                rec.end_ns
            );
            let mut last_start = 0;
            for (i, (&a, &s)) in arrivals.iter().zip(&rec.start_ns).enumerate() {
                if s == DROPPED || s == UNSERVED {
                    continue;
                }
                assert!(s >= a && s >= last_start, "{at}: request {i}");
                last_start = s;
                let first = rec.token_times(i)[0];
                assert!(first - a >= first - s && first - s == 2 * MS, "{at}");
            }
            assert!(p.ttft_ms.iter().all(|&t| t >= 2.0), "{at}");
            assert_eq!(rec.idle_lag_ns.capacity(), arrivals.len(), "{at}");
            if rate == 20.0 || (rate == 200.0 && max_queue.is_none()) {
                // (At 80% load a queue of 4 does overflow now and then.)
                assert_eq!(p.served, arrivals.len(), "{at}");
            } else if rate > 250.0 {
                assert!(p.saturated(), "{at}");
                assert!(p.achieved_qps() <= 251.0, "{at}: {}", p.achieved_qps());
            }
            if max_queue.is_some() && rate >= 1_000.0 {
                assert!(p.dropped > 0, "{at}");
            }
        }
    }
}

fn find(ttft_p99_ms: f64, tpot_p99_ms: f64) -> LlmFindMax {
    LlmFindMax {
        ttft_p99_ms,
        tpot_p99_ms,
        precision: 0.02,
        max_probes: 30,
        min_requests: 20,
    }
}

/// The search over simulated server runs of a model with a known service time (10 ms per
/// request: 100/s): the passing rate it reports is under the capacity, the bracket is as tight
/// as asked, and a TPOT bound under the step time passes nothing.
#[test]
fn the_search_brackets_the_capacity_of_a_known_model() {
    let (prefill, step, m) = (4 * MS, 2 * MS, 4);
    let capacity = 1e9 / (prefill + (m as u64 - 1) * step) as f64;
    let probe = |rate: f64| -> Result<LlmProbeRaw, LlmError> {
        let arrivals = poisson_schedule(rate, 20.0, 5);
        let rec = sim_serve(prefill, step, &arrivals, &serve_cfg(m, None, 20_000, 2_000));
        Ok(LlmProbeRaw::from_record(rate, 20.0, &arrivals, &rec))
    };
    // p99 TTFT within 10 service times; TPOT is always the 2 ms step.
    let f = find(100.0, 2.5);
    let s = find_max_qps(capacity, &f, 20.0, probe).unwrap();
    assert_eq!(s.end, SearchEnd::Converged);
    let (lo, hi) = (s.passing_qps.unwrap(), s.failing_qps.unwrap());
    assert!(lo < capacity && lo > 0.5 * capacity, "{lo} of {capacity}");
    assert!(hi > lo && hi / lo <= 1.02, "{lo} {hi}");
    let best = &s.probes[s.best.unwrap()];
    assert!(best.passes(&f) && best.ttft_p99_ms().unwrap() <= 100.0);
    assert_eq!(best.tpot_p99_ms(), Some(2.0));
    assert_eq!(
        s.passed,
        s.probes.iter().map(|p| p.passes(&f)).collect::<Vec<_>>()
    );
    assert_eq!(&s.probes[0].target_qps, &(capacity / 2.0));

    let f = find(100.0, 1.9);
    let s = find_max_qps(capacity, &f, 20.0, probe).unwrap();
    assert_eq!(s.end, SearchEnd::NoPassingRate);
    assert_eq!(s.failing_qps, Some(1.0), "the floor: 20 requests in 20 s");
}

fn load(target: LlmServerTarget) -> LlmServerLoad {
    LlmServerLoad {
        target,
        request: LlmRequest {
            prompt_tokens: 8,
            output_tokens: 4,
        },
        duration_s: 0.2,
        drain_s: 2.0,
        max_queue: None,
        seed: 9,
    }
}

#[test]
fn impossible_loads_are_refused_with_the_field_named() {
    assert!(load(LlmServerTarget::Qps(5.0)).check().is_ok());
    let mut l = load(LlmServerTarget::Qps(0.0));
    l.request.output_tokens = 1;
    l.max_queue = Some(0);
    let e = l.check().unwrap_err().to_string();
    for part in ["pp8+tg1", "output_tokens", "target_qps", "max_queue"] {
        assert!(e.contains(part), "{part}: {e}");
    }
    let mut f = find(f64::NAN, 5.0);
    f.max_probes = 0;
    let e = load(LlmServerTarget::FindMax(f)).check().unwrap_err();
    assert!(e.to_string().contains("ttft_p99_ms") && e.to_string().contains("max_probes"));
}

fn tiny() -> (tempfile::TempDir, LlmModel) {
    let (d, p) = write_temp(&TinyLlama::default());
    (d, LlmModel::load(&p, &Device::Cpu).unwrap())
}

/// The real path on the tiny GGUF: every request accounted for, TTFT at least the service
/// part of it, and the generated tokens those of a greedy loop over the same prompt.
#[test]
fn the_tiny_model_serves_requests_and_generates_greedy_tokens() {
    let (_d, mut m) = tiny();
    let l = load(LlmServerTarget::Qps(25.0));
    let arrivals = poisson_schedule(25.0, l.duration_s, l.seed);
    assert!(!arrivals.is_empty());
    let inputs = prompts(&m, 8, arrivals.len(), 4).unwrap();
    let rec = serve(&mut m, &inputs, &arrivals, &l.serve_config()).unwrap();
    let p = LlmProbeRaw::from_record(25.0, l.duration_s, &arrivals, &rec);
    assert_eq!(p.served + p.dropped + p.unserved, arrivals.len());
    assert!(
        p.served >= 1,
        "the first request starts before the deadline"
    );
    assert_eq!(p.tpot_ms.len(), p.served);
    for (i, (&a, &s)) in arrivals.iter().zip(&rec.start_ns).enumerate() {
        if s == UNSERVED {
            continue;
        }
        let t = rec.token_times(i);
        assert!(s >= a && t[0] > s && t.windows(2).all(|w| w[0] <= w[1]));
        assert!(t[0] - a >= t[0] - s, "TTFT includes the service time");
    }
    let ids = random_tokens(m.vocab_size(), 8 * arrivals.len(), 4);
    let mut want = vec![argmax(&m.prefill_tokens(&ids[..8]).unwrap())];
    for _ in 0..3 {
        want.push(argmax(&m.step_token(*want.last().unwrap()).unwrap()));
    }
    assert_eq!(rec.generated(0), want);
}

/// `run_server` end to end on the tiny model, a fixed rate and a two-probe search: the record
/// says what ran, and its figures are the chosen probe's.
#[test]
fn a_server_case_records_its_probes_and_search() {
    let (_d, mut m) = tiny();
    let sampler = SamplerConfig {
        warmup: Duration::from_millis(5),
        max_warmup: Duration::from_millis(50),
        warmup_tolerance: 0.5,
        min_time: Duration::ZERO,
        min_iterations: 1,
        max_time: Duration::from_secs(1),
        max_noise: 1.0,
        max_samples: 10,
        budget: None,
        seed: 1,
    };
    let l = load(LlmServerTarget::Qps(20.0));
    let run = run_server(&mut m, &l, &sampler, &mut ()).unwrap();
    assert!(run.warm.per_call_s > 0.0);
    let ms = &run.measurement;
    assert_eq!(
        (ms.probes.len(), ms.chosen, &ms.search),
        (1, Some(0), &None)
    );
    let info = ms.info(&l, 200, 1);
    let p = &ms.probes[0];
    assert_eq!(info.target_qps, Some(20.0));
    assert_eq!((info.requests, info.served), (p.requests, p.served));
    assert_eq!(info.ttft_ms.as_ref().map(|s| s.count), Some(p.served));
    assert_eq!(info.execution, LLM_SERVER_EXECUTION);
    assert!(info.search.is_none());

    let mut f = find(1e6, 1e6);
    f.max_probes = 2;
    f.min_requests = 1;
    let l = load(LlmServerTarget::FindMax(f));
    let run = run_server(&mut m, &l, &sampler, &mut ()).unwrap();
    let ms = &run.measurement;
    assert_eq!(ms.probes.len(), 2);
    let info = ms.info(&l, 200, 1);
    let search = info.search.as_ref().unwrap();
    assert_eq!(search.probes.len(), 2);
    assert!((search.start_capacity_qps - 1.0 / run.warm.per_call_s).abs() < 1e-6);
    assert_eq!(search.max_qps, ms.search.as_ref().unwrap().passing_qps);
    let chosen = ms.chosen.map(|i| &ms.probes[i]);
    assert_eq!(info.served, chosen.map(|p| p.served).unwrap_or(0));
    assert_eq!(info.target_qps, None);
    // The record is plain JSON and reads back.
    let json = serde_json::to_string(&info).unwrap();
    assert_eq!(serde_json::from_str::<LlmServerInfo>(&json).unwrap(), info);
    let measurement_json = serde_json::to_string(ms).unwrap();
    assert_eq!(
        &serde_json::from_str::<LlmServerMeasurement>(&measurement_json).unwrap(),
        ms
    );
}

/// A request that does not fit the model's context is refused before anything runs.
#[test]
fn a_request_longer_than_the_context_is_refused() {
    let mut m = NullDecoder::new(100, 10);
    let mut l = load(LlmServerTarget::Qps(5.0));
    l.request.prompt_tokens = 8;
    l.request.output_tokens = 4; // 11 positions
    let sampler = SamplerConfig {
        warmup: Duration::ZERO,
        max_warmup: Duration::ZERO,
        warmup_tolerance: 1.0,
        min_time: Duration::ZERO,
        min_iterations: 1,
        max_time: Duration::ZERO,
        max_noise: 1.0,
        max_samples: 1,
        budget: None,
        seed: 1,
    };
    let e = run_server(&mut m, &l, &sampler, &mut ()).unwrap_err();
    assert!(e.to_string().contains("11 tokens"), "{e}");
}

/// The loops take a model behind a trait object, as a model kind holding a loaded model of
/// any architecture would pass it.
#[test]
fn the_loops_run_behind_a_trait_object() {
    let mut null = NullDecoder::new(100, 64);
    let model: &mut dyn Decoder<Input = usize, Logits = usize> = &mut null;
    let inputs = prompts(model, 4, 2, 1).unwrap();
    let (mut clock, _) = sim(0, 0);
    let rec = serve_on(
        &mut clock,
        model,
        &inputs,
        &[0, 0],
        &serve_cfg(3, None, 1, 1),
    )
    .unwrap();
    assert_eq!(rec.generated(1), [4, 5, 6]);
    let test = LlmTest::Decode {
        depth: 2,
        new_tokens: 3,
    };
    let mut b = LlmBench::new(model, test, 1).unwrap();
    b.run().unwrap();
    assert_eq!(b.generated(), [3, 4, 5]);
}
