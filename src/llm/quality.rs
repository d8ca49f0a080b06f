//! Quality of a language model on fixed token ids, by llama.cpp's `llama-perplexity`
//! definitions (tools/perplexity/perplexity.cpp), so its figures can be set beside ours:
//!
//! - Perplexity: the ids are cut into chunks of `ctx` tokens (as many whole chunks as fit, or
//!   the first `chunks`), each run from an empty KV cache; only the second half of each chunk
//!   is scored (positions `ctx/2 .. ctx-2` predict the next token), so every scored token has
//!   at least `ctx/2` tokens of context. PPL = exp(mean NLL), its uncertainty
//!   PPL x sqrt(var(NLL) / (n - 1)). A model that adds BOS gets BOS as each chunk's first
//!   token, as llama-perplexity does.
//! - Against a baseline on the same positions (`--kl-divergence`): KL(base || model) per
//!   position, its mean with the standard error, the 99th percentile (llama's interpolated
//!   percentile); the share of positions whose top token agrees, with the binomial standard
//!   error sqrt(p(1-p)/(n-1)); RMS of Δp = p_model(next) - p_base(next), its uncertainty by
//!   the delta method; and ln(PPL/PPL_base) with the covariance of the two NLLs.
//!
//! One difference: llama.cpp stores the baseline's log-probabilities in 16 bits and skips
//! baseline probabilities under e^-16 in the KL sum; here both are exact f64 over the whole
//! vocabulary. The pure accumulators are separate from the driver that runs the models.

use serde::{Deserialize, Serialize};

use super::model::LlmModel;
use super::LlmError;

/// Which chunks of the ids are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    pub ctx: usize,
    pub chunks: usize,
}

impl ChunkPlan {
    /// `ctx`-token chunks of `n_tokens` ids: all that fit, or at most `max_chunks`. Like
    /// llama-perplexity, refuses fewer than `2 ctx` tokens.
    pub fn new(n_tokens: usize, ctx: usize, max_chunks: Option<usize>) -> Result<Self, LlmError> {
        if ctx < 4 {
            return Err(LlmError::Invalid(format!(
                "a perplexity context of {ctx} tokens scores nothing; use at least 4"
            )));
        }
        if n_tokens < 2 * ctx {
            return Err(LlmError::Invalid(format!(
                "perplexity with a context of {ctx} needs at least {} tokens, the text has {n_tokens}",
                2 * ctx
            )));
        }
        let all = n_tokens / ctx;
        let chunks = max_chunks.map_or(all, |m| m.min(all));
        if chunks == 0 {
            return Err(LlmError::Invalid("zero perplexity chunks".into()));
        }
        Ok(ChunkPlan { ctx, chunks })
    }

    /// The first scored position of a chunk.
    pub fn first(&self) -> usize {
        self.ctx / 2
    }

    /// Positions scored in all (each chunk: `ctx - 1 - ctx/2`).
    pub fn scored(&self) -> usize {
        self.chunks * (self.ctx - 1 - self.first())
    }

    /// Chunk `i`'s tokens, its first replaced by `bos` when given.
    pub fn chunk(&self, ids: &[u32], i: usize, bos: Option<u32>) -> Vec<u32> {
        let mut c = ids[i * self.ctx..(i + 1) * self.ctx].to_vec();
        if let Some(b) = bos {
            c[0] = b;
        }
        c
    }
}

/// Negative log-likelihood of `target` under softmax(`logits`), computed as llama.cpp does
/// (max-shifted, sum in f64).
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// log softmax of `logits`, in f64.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    logits.iter().map(|&l| l as f64 - lse).collect()
}

/// llama-perplexity's `mean_and_uncertainty`: the mean and its standard error (0 with 10
/// values or fewer).
pub fn mean_and_uncertainty(sum: f64, sum2: f64, count: u64) -> (f64, f64) {
    if count == 0 {
        return (0.0, 0.0);
    }
    let n = count as f64;
    let f = sum / n;
    let var = sum2 / n - f * f;
    let df = if var > 0.0 && count > 10 {
        (var / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (f, df)
}

/// llama-perplexity's percentile of sorted values: linear interpolation between ranks.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        _ if fraction <= 0.0 => sorted[0],
        n if fraction >= 1.0 => sorted[n - 1],
        n => {
            let p = fraction * (n - 1) as f64;
            let i = p.floor() as usize;
            let frac = p - i as f64;
            (1.0 - frac) * sorted[i] + frac * sorted[(i + 1).min(n - 1)]
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perplexity {
    pub ppl: f64,
    /// PPL x the standard error of the mean NLL.
    pub uncertainty: f64,
    pub mean_nll: f64,
    pub tokens: u64,
}

/// Sums of NLL and NLL² over scored positions.
#[derive(Debug, Clone, Default)]
pub struct PerplexityAcc {
    sum: f64,
    sum2: f64,
    count: u64,
}

impl PerplexityAcc {
    pub fn add(&mut self, nll: f64) {
        self.sum += nll;
        self.sum2 += nll * nll;
        self.count += 1;
    }

    pub fn finish(&self) -> Perplexity {
        let (mean, se) = mean_and_uncertainty(self.sum, self.sum2, self.count);
        let ppl = mean.exp();
        Perplexity {
            ppl,
            uncertainty: ppl * se,
            mean_nll: mean,
            tokens: self.count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlDivergence {
    pub mean: f64,
    pub uncertainty: f64,
    pub p99: f64,
    pub median: f64,
    pub max: f64,
    /// Share of positions whose most likely token is the baseline's, and its standard error.
    pub same_top: f64,
    pub same_top_uncertainty: f64,
    /// RMS of p(next token) minus the baseline's, and its uncertainty.
    pub rms_dp: f64,
    pub rms_dp_uncertainty: f64,
    /// ln(PPL / PPL_base) and its uncertainty (the NLLs' covariance taken into account).
    pub ln_ppl_ratio: f64,
    pub ln_ppl_ratio_uncertainty: f64,
    pub perplexity: Perplexity,
    pub baseline_perplexity: Perplexity,
    pub tokens: u64,
}

/// The `--kl-divergence` sums over scored positions.
#[derive(Debug, Clone, Default)]
pub struct KlAcc {
    nll: PerplexityAcc,
    nll_base: PerplexityAcc,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_dp2: f64,
    sum_dp4: f64,
    same_top: u64,
    kld: Vec<f64>,
}

impl KlAcc {
    /// One position: the baseline's log-probabilities, the model's logits, the next token.
    pub fn add(&mut self, base_log_probs: &[f64], logits: &[f32], target: u32) {
        let log_probs = log_softmax(logits);
        let t = target as usize;
        let (nll, nll_base) = (-log_probs[t], -base_log_probs[t]);
        self.nll.add(nll);
        self.nll_base.add(nll_base);
        self.sum_nll_nll_base += nll * nll_base;
        let kld: f64 = base_log_probs
            .iter()
            .zip(&log_probs)
            .map(|(&lb, &lq)| {
                if lb > f64::NEG_INFINITY {
                    lb.exp() * (lb - lq)
                } else {
                    0.0
                }
            })
            .sum();
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.kld.push(kld);
        if first_argmax(&log_probs) == first_argmax(base_log_probs) {
            self.same_top += 1;
        }
        let dp = (-nll).exp() - (-nll_base).exp();
        self.sum_dp2 += dp * dp;
        self.sum_dp4 += dp * dp * dp * dp;
    }

    pub fn finish(&self) -> KlDivergence {
        let n = self.nll.count;
        let (kl, kl_se) = mean_and_uncertainty(self.sum_kld, self.sum_kld2, n);
        let mut sorted = self.kld.clone();
        sorted.sort_by(f64::total_cmp);
        let (mse, mse_se) = mean_and_uncertainty(self.sum_dp2, self.sum_dp4, n);
        let rms = mse.sqrt();
        let same = if n > 0 {
            self.same_top as f64 / n as f64
        } else {
            0.0
        };
        let same_se = if n > 1 {
            (same * (1.0 - same) / (n as f64 - 1.0)).sqrt()
        } else {
            0.0
        };
        let (lq, lq_se) = mean_and_uncertainty(self.nll.sum, self.nll.sum2, n);
        let (lb, lb_se) = mean_and_uncertainty(self.nll_base.sum, self.nll_base.sum2, n);
        let cov = if n >= 10 {
            let nf = n as f64;
            (self.sum_nll_nll_base / nf - (self.nll.sum / nf) * (self.nll_base.sum / nf))
                / (nf - 1.0)
        } else {
            0.0
        };
        KlDivergence {
            mean: kl,
            uncertainty: kl_se,
            p99: percentile(&sorted, 0.99),
            median: percentile(&sorted, 0.5),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            same_top: same,
            same_top_uncertainty: same_se,
            rms_dp: rms,
            rms_dp_uncertainty: if rms > 0.0 { 0.5 / rms * mse_se } else { 0.0 },
            ln_ppl_ratio: lq - lb,
            ln_ppl_ratio_uncertainty: (lq_se * lq_se + lb_se * lb_se - 2.0 * cov).max(0.0).sqrt(),
            perplexity: self.nll.finish(),
            baseline_perplexity: self.nll_base.finish(),
            tokens: n,
        }
    }
}

/// The first index of the largest value.
fn first_argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The BOS token a model's chunks start with, when its tokenizer adds one.
fn chunk_bos(model: &LlmModel) -> Option<u32> {
    let info = model.info();
    if info.add_bos {
        info.bos_token
    } else {
        None
    }
}

/// Runs `f(chunk, position, logits)` over every scored position of `plan`.
fn for_each_scored(
    model: &mut LlmModel,
    ids: &[u32],
    plan: &ChunkPlan,
    mut f: impl FnMut(usize, usize, &[f32]) -> Result<(), LlmError>,
) -> Result<(), LlmError> {
    model.info().check_context(plan.ctx)?;
    let bos = chunk_bos(model);
    for c in 0..plan.chunks {
        let tokens = plan.chunk(ids, c, bos);
        // The last position predicts past the chunk: it is not scored, so not run.
        model.logits_from(&tokens[..plan.ctx - 1], plan.first(), |pos, logits| {
            f(c, pos, logits)
        })?;
    }
    Ok(())
}

/// Perplexity of `model` on `ids` (see the module doc).
pub fn perplexity(
    model: &mut LlmModel,
    ids: &[u32],
    plan: &ChunkPlan,
) -> Result<Perplexity, LlmError> {
    let mut acc = PerplexityAcc::default();
    for_each_scored(model, ids, plan, |c, pos, logits| {
        acc.add(nll(logits, ids[c * plan.ctx + pos + 1]));
        Ok(())
    })?;
    Ok(acc.finish())
}

/// `model` against `baseline` on the same positions of `ids` (see the module doc). The
/// baseline's log-probabilities of one chunk are held at a time (`ctx/2 x vocab` f64).
pub fn kl_divergence(
    baseline: &mut LlmModel,
    model: &mut LlmModel,
    ids: &[u32],
    plan: &ChunkPlan,
) -> Result<KlDivergence, LlmError> {
    if baseline.vocab_size() != model.vocab_size() {
        return Err(LlmError::Invalid(format!(
            "the baseline has {} tokens in its vocabulary, the model {}: no KL divergence between them",
            baseline.vocab_size(),
            model.vocab_size()
        )));
    }
    let mut acc = KlAcc::default();
    for c in 0..plan.chunks {
        let one = ChunkPlan {
            ctx: plan.ctx,
            chunks: 1,
        };
        let chunk = &ids[c * plan.ctx..(c + 1) * plan.ctx];
        let mut base = Vec::with_capacity(plan.ctx - plan.first());
        for_each_scored(baseline, chunk, &one, |_, _, logits| {
            base.push(log_softmax(logits));
            Ok(())
        })?;
        let mut i = 0;
        for_each_scored(model, chunk, &one, |_, pos, logits| {
            acc.add(&base[i], logits, chunk[pos + 1]);
            i += 1;
            Ok(())
        })?;
    }
    Ok(acc.finish())
}

/// A baseline's perplexity and every model of `models` against it, in one pass over the
/// chunks: each chunk's baseline log-probabilities are computed once and each model is scored
/// against them, on the positions [`perplexity`] and [`kl_divergence`] score (so the figures
/// are theirs). Returns the baseline's perplexity and each model's divergence (its own
/// perplexity inside), with the seconds each model's share of the pass took (baseline first).
pub fn score_against(
    baseline: &mut LlmModel,
    models: &mut [&mut LlmModel],
    ids: &[u32],
    plan: &ChunkPlan,
) -> Result<Scored, LlmError> {
    if let Some(m) = models
        .iter()
        .find(|m| m.vocab_size() != baseline.vocab_size())
    {
        return Err(LlmError::Invalid(format!(
            "the baseline has {} tokens in its vocabulary, a variant {}: no KL divergence between them",
            baseline.vocab_size(),
            m.vocab_size()
        )));
    }
    let mut base_acc = PerplexityAcc::default();
    let mut accs: Vec<KlAcc> = models.iter().map(|_| KlAcc::default()).collect();
    let mut seconds = vec![0.0; models.len() + 1];
    let one = ChunkPlan {
        ctx: plan.ctx,
        chunks: 1,
    };
    for c in 0..plan.chunks {
        let chunk = &ids[c * plan.ctx..(c + 1) * plan.ctx];
        let started = std::time::Instant::now();
        let mut base = Vec::with_capacity(plan.ctx - plan.first());
        for_each_scored(baseline, chunk, &one, |_, pos, logits| {
            base_acc.add(nll(logits, chunk[pos + 1]));
            base.push(log_softmax(logits));
            Ok(())
        })?;
        seconds[0] += started.elapsed().as_secs_f64();
        for (k, (model, acc)) in models.iter_mut().zip(&mut accs).enumerate() {
            let started = std::time::Instant::now();
            let mut i = 0;
            for_each_scored(model, chunk, &one, |_, pos, logits| {
                acc.add(&base[i], logits, chunk[pos + 1]);
                i += 1;
                Ok(())
            })?;
            seconds[k + 1] += started.elapsed().as_secs_f64();
        }
    }
    Ok(Scored {
        baseline: base_acc.finish(),
        against: accs.iter().map(KlAcc::finish).collect(),
        seconds,
    })
}

/// What [`score_against`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub baseline: Perplexity,
    /// Each model against the baseline, in the order given.
    pub against: Vec<KlDivergence>,
    /// Seconds of each model's share of the pass: the baseline's first.
    pub seconds: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tiny::{write_temp, TinyLlama};
    use crate::llm::tokens::random_tokens;
    use candle_core::Device;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn nll_and_log_softmax_of_hand_made_distributions() {
        assert!(close(nll(&[0.0; 4], 2), 4f64.ln()));
        // Logits ln 1 and ln 3: probabilities 1/4 and 3/4, whatever the shift.
        let l = [10.0, 10.0 + 3f32.ln()];
        assert!((nll(&l, 1) - -(0.75f64.ln())).abs() < 1e-6);
        let lp = log_softmax(&l);
        assert!((lp[0] - 0.25f64.ln()).abs() < 1e-6 && (lp[1] - 0.75f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn perplexity_is_exp_of_the_mean_nll_with_its_standard_error() {
        let mut acc = PerplexityAcc::default();
        (0..12).for_each(|_| acc.add(4f64.ln()));
        let p = acc.finish();
        assert!(close(p.ppl, 4.0) && p.uncertainty < 1e-6 && p.tokens == 12);
        // Six of ln 2 and six of ln 8: mean ln 4, population variance (ln 2)^2.
        let mut acc = PerplexityAcc::default();
        (0..6).for_each(|_| {
            acc.add(2f64.ln());
            acc.add(8f64.ln());
        });
        let p = acc.finish();
        assert!(close(p.ppl, 4.0));
        assert!(close(p.uncertainty, 4.0 * 2f64.ln() / 11f64.sqrt()));
        // Ten values or fewer: no uncertainty, as llama-perplexity.
        let mut acc = PerplexityAcc::default();
        acc.add(1.0);
        acc.add(2.0);
        assert_eq!(acc.finish().uncertainty, 0.0);
    }

    #[test]
    fn kl_divergence_same_top_and_delta_p_by_hand() {
        let half = [0.5f64.ln(), 0.5f64.ln()];
        let quarter_logits = [0.0f32, 3f32.ln()]; // p = (1/4, 3/4)
        let mut acc = KlAcc::default();
        acc.add(&half, &quarter_logits, 1);
        let k = acc.finish();
        // KL = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3).
        assert!(
            (k.mean - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-7,
            "{}",
            k.mean
        );
        // The baseline's tie goes to its first token, the model prefers the second.
        assert_eq!(k.same_top, 0.0);
        assert!((k.rms_dp - 0.25).abs() < 1e-7);
        assert!((k.ln_ppl_ratio - (0.5f64.ln() - 0.75f64.ln())).abs() < 1e-7);

        // Twenty positions, the model agreeing with the baseline on fifteen.
        let mut acc = KlAcc::default();
        let base = log_softmax(&[2.0, 0.0, 0.0]);
        for i in 0..20 {
            let logits = if i % 4 == 0 {
                [0.0, 2.0, 0.0]
            } else {
                [2.0, 0.0, 0.0]
            };
            acc.add(&base, &logits, 0);
        }
        let k = acc.finish();
        assert!(close(k.same_top, 0.75));
        assert!(close(
            k.same_top_uncertainty,
            (0.75f64 * 0.25 / 19.0).sqrt()
        ));
        // Five positions diverge by the same KL, fifteen by none: the 99th percentile is the
        // divergent value, the median 0.
        let lp = log_softmax(&[0.0, 2.0, 0.0]);
        let kl_one: f64 = base.iter().zip(&lp).map(|(b, q)| b.exp() * (b - q)).sum();
        assert!(close(k.mean, kl_one / 4.0));
        assert!(close(k.p99, kl_one) && k.median == 0.0 && close(k.max, kl_one));
        let (_, se) = mean_and_uncertainty(5.0 * kl_one, 5.0 * kl_one * kl_one, 20);
        assert!(close(k.uncertainty, se) && se > 0.0);

        let mut same = KlAcc::default();
        same.add(&log_softmax(&[1.0, 2.0, 3.0]), &[1.0, 2.0, 3.0], 0);
        let k = same.finish();
        assert!(k.mean.abs() < 1e-12 && k.same_top == 1.0 && k.rms_dp < 1e-12);
    }

    #[test]
    fn percentiles_interpolate_as_llama_perplexity() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!(close(percentile(&v, 0.99), 4.96));
        assert!(close(percentile(&v, 0.5), 3.0));
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn chunk_plans_cut_and_score_like_llama_perplexity() {
        let p = ChunkPlan::new(1000, 100, None).unwrap();
        assert_eq!((p.chunks, p.first(), p.scored()), (10, 50, 490));
        assert_eq!(ChunkPlan::new(1000, 100, Some(3)).unwrap().chunks, 3);
        let err = ChunkPlan::new(150, 100, None).unwrap_err().to_string();
        assert!(
            err.contains("needs at least 200 tokens, the text has 150"),
            "{err}"
        );
        let ids: Vec<u32> = (0..400).collect();
        let p = ChunkPlan::new(400, 100, None).unwrap();
        assert_eq!(p.chunk(&ids, 2, None)[..3], [200, 201, 202]);
        assert_eq!(p.chunk(&ids, 2, Some(7))[..3], [7, 201, 202]);
    }

    /// The driver scores exactly the second half of each chunk: the same figure comes out of
    /// one prefill per scored position, done by hand.
    #[test]
    fn perplexity_driver_matches_a_position_by_position_computation() {
        let (_d, path) = write_temp(&TinyLlama::default());
        let mut m = LlmModel::load(&path, &Device::Cpu).unwrap();
        let ids = random_tokens(m.vocab_size(), 70, 5);
        let plan = ChunkPlan::new(ids.len(), 16, Some(3)).unwrap();
        let got = perplexity(&mut m, &ids, &plan).unwrap();
        let mut acc = PerplexityAcc::default();
        for c in 0..3 {
            let chunk = &ids[c * 16..(c + 1) * 16];
            for pos in 8..15 {
                let logits = m.prefill_tokens(&chunk[..=pos]).unwrap();
                acc.add(nll(&logits, chunk[pos + 1]));
            }
        }
        let want = acc.finish();
        assert_eq!(got.tokens, 21);
        assert!(
            (got.ppl - want.ppl).abs() < 1e-4 * want.ppl,
            "{} vs {}",
            got.ppl,
            want.ppl
        );
        // A random model on random ids is about as perplexed as a uniform guess.
        assert!(got.ppl > 20.0, "{}", got.ppl);

        let mut twin = LlmModel::load(&path, &Device::Cpu).unwrap();
        let k = kl_divergence(&mut m, &mut twin, &ids, &plan).unwrap();
        assert!(k.mean < 1e-9 && k.same_top == 1.0 && k.tokens == 21);
        assert!((k.perplexity.ppl - got.ppl).abs() < 1e-9 * got.ppl);

        // One pass for several models gives each the figures of its own pass.
        let (_d2, other) = write_temp(&TinyLlama {
            seed: 8,
            ..TinyLlama::default()
        });
        let mut other = LlmModel::load(&other, &Device::Cpu).unwrap();
        let alone = kl_divergence(&mut m, &mut other, &ids, &plan).unwrap();
        let s = score_against(&mut m, &mut [&mut twin, &mut other], &ids, &plan).unwrap();
        assert_eq!(s.baseline, got);
        assert_eq!(s.against[1], alone);
        assert!(s.against[0].mean < 1e-9 && s.against[1].mean > 0.01);
        assert_eq!(s.seconds.len(), 3);
    }
}
