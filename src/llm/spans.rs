//! Where a forward pass of candle's quantized models spends its time, from the `tracing`
//! spans candle-transformers opens inside them (`model`, `attn`, `attn-rot`, `attn-mlp`,
//! `mlp`, `qmatmul`, `rms-norm`, `output`): [`SpanTimer`] is a `tracing` subscriber that
//! times every span and charges each its self time (its duration less its children's), by
//! component ([`component`]). The code timed is the code benchmarked, unchanged; what it can
//! tell apart is what candle traces (llama traces its matmuls, qwen2 does not, for example).
//!
//! A span binds to the subscriber current when it is created, so the model must be loaded
//! under the timer ([`SpanTimer::dispatch`] with `tracing::dispatcher::with_default`).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::NoSubscriber;
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// The components a forward pass is split into, in the order they are reported, with the
/// `(parent span, span)` pairs each one gathers (`*`: any parent).
const COMPONENTS: &[(&str, &[(&str, &str)])] = &[
    ("matmuls: attention q, k, v, o", &[("attn", "qmatmul")]),
    ("RoPE", &[("*", "attn-rot")]),
    (
        "attention: scores, softmax, values, KV cache",
        &[("*", "attn")],
    ),
    (
        "matmuls: MLP gate, up, down",
        // phi3 opens no span around its MLP: its matmuls outside attention are the MLP's.
        &[
            ("attn-mlp", "qmatmul"),
            ("mlp", "qmatmul"),
            ("model", "qmatmul"),
        ],
    ),
    (
        "MLP: activation, residual add",
        &[("*", "attn-mlp"), ("*", "mlp")],
    ),
    ("RMS norms", &[("*", "rms-norm")]),
    ("logits: output matmul", &[("output", "qmatmul")]),
    ("logits: rest", &[("*", "output")]),
    ("embedding lookup, residual adds, other", &[("*", "model")]),
];

/// The component a span's self time belongs to: one of [`COMPONENTS`], or the span's own
/// name for a span candle adds later.
pub fn component(parent: &str, name: &str) -> String {
    COMPONENTS
        .iter()
        .find(|(_, pairs)| {
            pairs
                .iter()
                .any(|&(p, n)| n == name && (p == "*" || p == parent))
        })
        .map(|(label, _)| label.to_string())
        .unwrap_or_else(|| format!("span `{name}` under `{parent}`"))
}

/// The rank of a component in the report (unknown spans last).
pub fn component_rank(label: &str) -> usize {
    COMPONENTS
        .iter()
        .position(|(l, _)| *l == label)
        .unwrap_or(COMPONENTS.len())
}

#[derive(Default)]
struct State {
    /// Span names by id - 1.
    names: Vec<&'static str>,
    /// Open spans: name index, start, time spent in children so far (ns).
    stack: Vec<(usize, Instant, u64)>,
    /// Recording only while armed (between whole forward passes).
    armed: bool,
    /// Top-level spans (forward passes) closed since the iteration began.
    forwards: usize,
    /// Forward passes at the start of each iteration that are not counted (a decode's
    /// context prefill, outside the timed region).
    skip: usize,
    /// `(parent, name)` pairs seen, and per iteration the self time of each (ns).
    keys: Vec<(&'static str, &'static str)>,
    iterations: Vec<Vec<u64>>,
}

/// A `tracing` subscriber timing candle's spans; clones share one record.
#[derive(Clone, Default)]
pub struct SpanTimer {
    state: Arc<Mutex<State>>,
}

impl SpanTimer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain numbers behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The dispatcher to load a model under (its spans then report here).
    pub fn dispatch(&self) -> Dispatch {
        // tracing caches each callsite's interest. With a single live dispatcher it takes
        // the interest of whichever thread reaches a callsite first, so a callsite of
        // candle's first reached on another thread (tests running models side by side)
        // would be cached as "never" and its spans would not reach this timer. A second,
        // permanent dispatcher that enables nothing makes the cache combine every live
        // dispatcher instead: this one's callsites become "sometimes", asked per span.
        static COMPANION: OnceLock<Dispatch> = OnceLock::new();
        COMPANION.get_or_init(|| Dispatch::new(NoSubscriber::default()));
        Dispatch::new(self.clone())
    }

    /// Starts recording a new iteration, leaving out its first `skip` forward passes. Call
    /// it between forward passes.
    pub fn begin_iteration(&self, skip: usize) {
        let mut s = self.lock();
        let width = s.keys.len();
        s.iterations.push(vec![0; width]);
        s.forwards = 0;
        s.skip = skip;
        s.armed = true;
    }

    /// Stops recording (between forward passes).
    pub fn disarm(&self) {
        self.lock().armed = false;
    }

    /// The `(parent, name)` pairs seen and each iteration's self times (ns), one value per
    /// pair (0 where an iteration did not see it).
    pub fn take(&self) -> (Vec<(&'static str, &'static str)>, Vec<Vec<u64>>) {
        let mut s = self.lock();
        let width = s.keys.len();
        let mut iterations = std::mem::take(&mut s.iterations);
        for it in &mut iterations {
            it.resize(width, 0);
        }
        (s.keys.clone(), iterations)
    }
}

impl Subscriber for SpanTimer {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut s = self.lock();
        s.names.push(attrs.metadata().name());
        Id::from_u64(s.names.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, id: &Id) {
        let mut s = self.lock();
        if s.armed {
            let index = id.into_u64() as usize - 1;
            s.stack.push((index, Instant::now(), 0));
        }
    }

    fn exit(&self, _: &Id) {
        let end = Instant::now();
        let mut guard = self.lock();
        let s = &mut *guard;
        if !s.armed {
            return;
        }
        let Some((index, start, children)) = s.stack.pop() else {
            return;
        };
        let total = (end - start).as_nanos() as u64;
        let parent = match s.stack.last_mut() {
            Some(p) => {
                p.2 += total;
                s.names[p.0]
            }
            None => "",
        };
        let counted = s.forwards >= s.skip;
        if s.stack.is_empty() {
            s.forwards += 1;
        }
        if !counted {
            return;
        }
        let key = (parent, s.names[index]);
        let slot = match s.keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                s.keys.push(key);
                s.keys.len() - 1
            }
        };
        if let Some(it) = s.iterations.last_mut() {
            if it.len() <= slot {
                it.resize(slot + 1, 0);
            }
            it[slot] += total.saturating_sub(children);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_map_to_components_by_parent() {
        assert_eq!(
            component("attn", "qmatmul"),
            "matmuls: attention q, k, v, o"
        );
        assert_eq!(
            component("attn-mlp", "qmatmul"),
            "matmuls: MLP gate, up, down"
        );
        assert_eq!(component("output", "qmatmul"), "logits: output matmul");
        assert_eq!(component("attn-mlp", "rms-norm"), "RMS norms");
        assert_eq!(
            component("", "model"),
            "embedding lookup, residual adds, other"
        );
        assert_eq!(component("attn", "sdpa"), "span `sdpa` under `attn`");
        assert!(component_rank("RoPE") < component_rank("RMS norms"));
        assert_eq!(component_rank("span `x` under `y`"), COMPONENTS.len());
    }

    /// Spans are keyed by their parent; the first forward of an iteration can be left out;
    /// nothing is recorded while disarmed. (Durations themselves are checked end to end:
    /// unit tests do not read the clock.)
    #[test]
    fn iterations_leave_out_skipped_forwards_and_disarmed_time() {
        let timer = SpanTimer::default();
        let dispatch = timer.dispatch();
        let span = |name: &'static str| match name {
            "model" => tracing::span!(tracing::Level::TRACE, "model"),
            "qmatmul" => tracing::span!(tracing::Level::TRACE, "qmatmul"),
            "attn" => tracing::span!(tracing::Level::TRACE, "attn"),
            _ => tracing::span!(tracing::Level::TRACE, "rms-norm"),
        };
        let [model, qmatmul, attn, norm] = tracing::dispatcher::with_default(&dispatch, || {
            ["model", "qmatmul", "attn", "rms-norm"].map(span)
        });
        let forward = |inner: &tracing::Span| {
            let _o = model.enter();
            let _i = inner.enter();
            std::hint::black_box((0..10_000u64).sum::<u64>());
        };
        forward(&attn); // disarmed: not recorded
        timer.begin_iteration(1);
        forward(&norm); // the skipped first forward
        forward(&qmatmul);
        forward(&qmatmul);
        timer.begin_iteration(0);
        forward(&qmatmul);
        timer.disarm();
        forward(&attn);
        let (keys, iterations) = timer.take();
        assert_eq!(keys, [("model", "qmatmul"), ("", "model")]);
        assert_eq!(iterations.len(), 2);
        assert!(iterations.iter().all(|it| it.len() == 2 && it[0] > 0));
    }
}
