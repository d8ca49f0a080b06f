//! A language model's profile (`inferbench profile` on a prefill, decode or generate case).
//! candle's quantized models run their layers inside one `forward`, so there are no steps to
//! time one by one; instead the case's test is split into the components candle traces
//! (`llm::profile`: matmuls, attention, RoPE, norms, logits), on a second copy of the model
//! loaded under a span timer.

use crate::llm::profile::profile_test;
use crate::measure::SamplerConfig;
use crate::model::llm::LlmLoaded;
use crate::model::LoadedModel;
use crate::profile::RawProfile;

/// The profile of a language model's case; `None` for any other model (its steps are
/// timed).
pub(super) fn profile(
    model: &mut dyn LoadedModel,
    cfg: &SamplerConfig,
) -> Option<Result<RawProfile, String>> {
    let loaded = model.as_any_mut()?.downcast_mut::<LlmLoaded>()?;
    let Some((test, ids)) = &loaded.repeat else {
        return Some(Err(
            "a language model is profiled on its prefill, decode and generate cases".into(),
        ));
    };
    let profiled = profile_test(&loaded.path, loaded.model.device(), *test, ids, cfg);
    Some(profiled.map_err(|e| e.to_string()).map(|p| RawProfile {
        layers: p.layer_specs(),
        weight_bytes: Vec::new(),
        traffic_bytes: Vec::new(),
        samples_ms: p.samples_ms,
        warmup_iterations: p.warmup_iterations,
        stop_reason: p.stop_reason,
        noise: p.noise,
        // The components interleave layer by layer: there is no sequence of steps to trace.
        trace_ns: Vec::new(),
        forward_after_ms: Vec::new(),
    }))
}
