//! The dispatcher: one request at a time, on a clock, into buffers allocated before the window.

use std::time::{Duration, Instant};

use crate::llm::decoder::Decoder;
use crate::llm::tokens::random_tokens;
use crate::llm::LlmError;
use crate::measure::server::{wait_until, DROPPED, UNSERVED};

/// Not (yet) started. Distinct from every time a clock returns, 0 included.
const PENDING: u64 = u64::MAX - 2;

/// The clock a server run reads. [`WallClock`] in measurements; a simulated clock (advanced
/// by a fake model) tests the dispatcher's logic without wall-clock time.
pub trait Clock {
    /// Starts the window: `now_ns` counts from here.
    fn start(&mut self);
    /// Nanoseconds since `start`.
    fn now_ns(&self) -> u64;
    /// Returns at `target_ns` (or at once if it has passed).
    fn wait_until(&mut self, target_ns: u64);
}

/// The monotonic clock; waits sleep until 1 ms before the target, then spin
/// (`measure::server::wait_until`).
#[derive(Debug, Clone, Copy)]
pub struct WallClock(Instant);

impl Default for WallClock {
    fn default() -> Self {
        WallClock(Instant::now())
    }
}

impl Clock for WallClock {
    fn start(&mut self) {
        self.0 = Instant::now();
    }
    #[inline]
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn wait_until(&mut self, target_ns: u64) {
        wait_until(self.0, target_ns)
    }
}

/// How the dispatcher serves one schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmServeConfig {
    pub output_tokens: usize,
    pub max_queue: Option<usize>,
    /// The end of the arrival schedule.
    pub duration: Duration,
    /// Serving stops at `duration + drain`.
    pub drain: Duration,
}

/// What one server run recorded: raw, before statistics. Times are ns from the window's
/// start; per-token arrays hold `output_tokens` entries per request, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmServeRecord {
    pub output_tokens: usize,
    /// Per request: when its service started, or [`DROPPED`] / [`UNSERVED`].
    pub start_ns: Vec<u64>,
    /// When each output token was known (0 for requests not served).
    pub token_ns: Vec<u64>,
    /// The greedy tokens (0 for requests not served).
    pub tokens: Vec<u32>,
    /// Each idle wait for an arrival: how late the dispatcher woke.
    pub idle_lag_ns: Vec<u64>,
    /// When the dispatcher stopped.
    pub end_ns: u64,
}

impl LlmServeRecord {
    /// Request `i`'s token times.
    pub fn token_times(&self, i: usize) -> &[u64] {
        &self.token_ns[i * self.output_tokens..(i + 1) * self.output_tokens]
    }

    /// Request `i`'s generated tokens.
    pub fn generated(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.output_tokens..(i + 1) * self.output_tokens]
    }
}

/// The prompts of `count` requests of `prompt_tokens` seeded random ids each, made before the
/// window (one ChaCha8 stream seeded by `seed`, cut in order).
pub fn prompts<D: Decoder + ?Sized>(
    model: &D,
    prompt_tokens: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<D::Input>, LlmError> {
    let ids = random_tokens(model.vocab_size(), prompt_tokens * count, seed);
    ids.chunks(prompt_tokens.max(1))
        .map(|p| model.input(p))
        .collect()
}

/// Serves `arrivals` (ns from the window's start, ascending; request `i` has `prompts[i]`)
/// one request at a time on the wall clock. Every buffer the window writes is allocated
/// before it starts.
pub fn serve<D: Decoder + ?Sized>(
    model: &mut D,
    prompts: &[D::Input],
    arrivals: &[u64],
    cfg: &LlmServeConfig,
) -> Result<LlmServeRecord, LlmError> {
    serve_on(&mut WallClock::default(), model, prompts, arrivals, cfg)
}

/// [`serve`] on a given clock.
pub fn serve_on<D: Decoder + ?Sized, C: Clock + ?Sized>(
    clock: &mut C,
    model: &mut D,
    prompts: &[D::Input],
    arrivals: &[u64],
    cfg: &LlmServeConfig,
) -> Result<LlmServeRecord, LlmError> {
    let n = arrivals.len();
    let m = cfg.output_tokens;
    if prompts.len() != n || m == 0 {
        return Err(LlmError::Invalid(format!(
            "a server run needs one prompt per arrival ({} for {n}) and at least one output token",
            prompts.len()
        )));
    }
    let max_queue = cfg.max_queue.unwrap_or(usize::MAX);
    let deadline = (cfg.duration + cfg.drain).as_nanos() as u64;
    let mut start = vec![PENDING; n];
    let mut token_ns = vec![0u64; n * m];
    let mut tokens = vec![0u32; n * m];
    let mut idle_lag: Vec<u64> = Vec::with_capacity(n);

    clock.start();
    // Arrivals before `next` have been admitted (queued or dropped); requests before `head`
    // have been started or dropped; `queued` of those in `head..next` wait. Admitting late
    // (after a request finishes) is exact: nothing leaves the queue while one runs.
    let (mut next, mut head, mut queued) = (0usize, 0usize, 0usize);
    loop {
        let now = clock.now_ns();
        while next < n && arrivals[next] <= now {
            if queued >= max_queue {
                start[next] = DROPPED;
            } else {
                queued += 1;
            }
            next += 1;
        }
        if now >= deadline {
            break;
        }
        if queued == 0 {
            if next == n {
                break;
            }
            let target = arrivals[next].min(deadline);
            clock.wait_until(target);
            idle_lag.push(clock.now_ns().saturating_sub(target));
            continue;
        }
        while start[head] != PENDING {
            head += 1;
        }
        let i = head;
        head += 1;
        queued -= 1;
        start[i] = clock.now_ns();
        let row = i * m..(i + 1) * m;
        generate(
            clock,
            model,
            &prompts[i],
            &mut tokens[row.clone()],
            &mut token_ns[row],
        )?;
    }
    let end_ns = clock.now_ns();
    for s in start.iter_mut().filter(|s| **s == PENDING) {
        *s = UNSERVED;
    }
    Ok(LlmServeRecord {
        output_tokens: m,
        start_ns: start,
        token_ns,
        tokens,
        idle_lag_ns: idle_lag,
        end_ns,
    })
}

/// One request from an empty KV cache: the prefill's token, then `tokens.len() - 1` decode
/// steps, each token's time stored when it is known.
#[inline]
fn generate<D: Decoder + ?Sized, C: Clock + ?Sized>(
    clock: &C,
    model: &mut D,
    prompt: &D::Input,
    tokens: &mut [u32],
    times: &mut [u64],
) -> Result<(), LlmError> {
    model.reset();
    let logits = model.extend(prompt)?;
    model.synchronize()?;
    let mut next = model.greedy(&logits)?;
    times[0] = clock.now_ns();
    tokens[0] = next;
    for k in 1..tokens.len() {
        let input = model.input(&[next])?;
        let logits = model.decode_step(&input)?;
        model.synchronize()?;
        next = model.greedy(&logits)?;
        times[k] = clock.now_ns();
        tokens[k] = next;
    }
    Ok(())
}
