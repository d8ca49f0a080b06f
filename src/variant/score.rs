//! Scoring every built variant once on the test split: quality and fidelity of classifiers,
//! embedding quality of sentence encoders, and the size figures each variant reports.

use std::collections::HashMap;
use std::path::Path;

use crate::data::text::TextData;
use crate::model::{
    error_text, weight_stats, Architecture, CaseInputs, Purpose, WeightSource, Weights,
};
use crate::quality::{self};
use crate::schema::{EmbeddingQuality, ModelInfo, OutputFidelity};
use crate::suite::recipe::Recipe;
use crate::suite::VariantDef;

use super::{llm, train, BuildObserver, Builder, BuiltVariant};

impl Builder<'_> {
    /// Quality, fidelity and size figures of every variant, in suite order.
    pub(super) fn score(self, observer: &mut dyn BuildObserver) -> Vec<BuiltVariant> {
        let logits = self.test_logits();
        let embeddings = self.sentence_embeddings();
        let synthetic = self.synthetic_outputs();
        // Language models: headers and quality, each model's variants in one pass.
        let llm_scores = self.score_llm(observer);
        let baseline_of = |model: &str| {
            self.suite
                .variants
                .iter()
                .find(|v| v.model == model && v.recipe == Recipe::Baseline)
                .map(|v| v.id())
        };
        let mut out = Vec::new();
        for v in &self.suite.variants {
            let id = v.id();
            let seconds = self.seconds.get(&id).copied().unwrap_or(0.0);
            let made = match self.made.get(&id) {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    let built = failed(v, e.clone());
                    observer.built(&built, seconds);
                    out.push(built);
                    continue;
                }
                None => continue,
            };
            let stats = match weight_stats(made.arch.kind(), &made.weights) {
                Ok(s) => s,
                Err(e) => {
                    out.push(failed(v, error_text(&e)));
                    continue;
                }
            };
            let base_id = baseline_of(&v.model);
            let base_bytes = base_id
                .as_ref()
                .and_then(|b| match self.made.get(b) {
                    Some(Ok(m)) => weight_stats(m.arch.kind(), &m.weights).ok(),
                    _ => None,
                })
                .map(|s| s.weight_bytes);
            let mut error = None;
            let quality = match (&self.data, logits.get(&id)) {
                (Some(d), Some(Ok(l))) => {
                    let classes = made.arch.kind().outputs();
                    let pred = quality::argmax_rows(l, classes);
                    let mut q = quality::classification(
                        &made.arch.kind().describe_data(d),
                        &d.labels_of(&d.test),
                        &pred,
                        classes,
                    );
                    if let Some(b) = &base_id {
                        if let Some(Ok(bl)) = logits.get(b) {
                            if bl.len() == l.len() {
                                q.fidelity = Some(quality::fidelity(b, l, bl, classes));
                            }
                        }
                    }
                    Some(q)
                }
                (Some(_), Some(Err(e))) => {
                    error = Some(format!("scoring failed: {e}"));
                    None
                }
                _ => None,
            };
            let mut model_info = ModelInfo {
                params: stats.params,
                weight_bytes: stats.weight_bytes,
                flops_per_sample: made.arch.kind().flops_per_sample(),
                params_nonzero: Some(stats.params_nonzero),
                artifact_bytes: made.artifact_bytes,
                artifact_gzip_bytes: made.gzip_bytes,
                compression_rate: base_bytes
                    .filter(|_| stats.weight_bytes > 0)
                    .map(|b| b as f64 / stats.weight_bytes as f64),
                dtype: Some(stats.dtype),
                float_layers: made.float_layers.clone(),
                sparsity: made.sparsity.clone(),
                recipe: Some(recipe_text(v)),
                artifact: made.artifact.clone(),
                training: made.training.clone(),
                llm: None,
            };
            let mut llm_quality = None;
            if let Some(score) = llm_scores.get(&id) {
                let base = base_id.as_ref().and_then(|b| llm_scores.get(b));
                let base_bytes = base.and_then(|b| b.info.as_ref().ok().map(|i| i.weight_bytes));
                match &score.info {
                    Ok(info) => {
                        model_info = llm::model_info(model_info, info, &made.arch, base_bytes)
                    }
                    Err(e) => error = Some(e.clone()),
                }
                match &score.quality {
                    Some(Ok(q)) => llm_quality = Some(q.clone()),
                    Some(Err(e)) => error = Some(format!("scoring the perplexity failed: {e}")),
                    None => {}
                }
            }
            let embedding = match (
                embeddings.get(&id),
                base_id.as_ref().and_then(|b| embeddings.get(b)),
            ) {
                (Some(Ok(e)), Some(Ok(base))) if e.sentences.len() == base.sentences.len() => {
                    Some(e.quality(&made.arch, base, base_id.as_deref().unwrap_or_default()))
                }
                (Some(Err(e)), _) => {
                    error = Some(format!("scoring the embeddings failed: {e}"));
                    None
                }
                _ => None,
            };
            let output_fidelity =
                match self.output_fidelity(&synthetic, &id, base_id.as_deref(), &made.arch) {
                    Ok(f) => f,
                    Err(e) => {
                        error = Some(e);
                        None
                    }
                };
            let built = BuiltVariant {
                id,
                arch: made.arch.clone(),
                weights: made.source.clone(),
                model_info,
                quality,
                embedding,
                llm_quality,
                output_fidelity,
                error,
            };
            observer.built(&built, seconds);
            out.push(built);
        }
        out
    }

    /// Test logits of every built variant the suite's labelled data scores (each at its own
    /// input size).
    fn test_logits(&self) -> HashMap<String, Result<Vec<f32>, String>> {
        let err = |e: candle_core::Error| error_text(&e);
        let mut logits = HashMap::new();
        let Some(d) = &self.data else {
            return logits;
        };
        for (id, made) in &self.made {
            let Ok(m) = made else { continue };
            if !m.arch.kind().labelled() {
                continue;
            }
            let out = (|| {
                let mut net = m
                    .arch
                    .kind()
                    .build(&m.weights, Purpose::Inference)
                    .map_err(err)?;
                let set = train::TrainSet::of(&m.arch, d, &d.test)?;
                train::logits(net.as_mut(), &set.inputs, 128).map_err(err)
            })();
            logits.insert(id.clone(), out);
        }
        logits
    }

    /// Embeddings of every built sentence encoder, on the suite's sentences and pairs.
    fn sentence_embeddings(&self) -> HashMap<String, Result<Embedded, String>> {
        let mut embeddings = HashMap::new();
        let Some(t) = &self.text else {
            return embeddings;
        };
        for (id, made) in &self.made {
            let Ok(m) = made else { continue };
            let Some(v) = self.suite.variants.iter().find(|v| &v.id() == id) else {
                continue;
            };
            let Some(tokenizer) = self.model(&v.model).tokenizer.clone() else {
                continue;
            };
            embeddings.insert(id.clone(), embed_text(&m.arch, &m.weights, &tokenizer, t));
        }
        embeddings
    }

    /// Outputs on seeded synthetic inputs of the variants no data scores, for their
    /// fidelity to the baseline.
    fn synthetic_outputs(&self) -> HashMap<String, Result<Vec<f32>, String>> {
        let mut synthetic = HashMap::new();
        for (id, made) in &self.made {
            let Ok(m) = made else { continue };
            let kind = m.arch.kind();
            if let (Some(how), false) = (
                kind.synthetic_fidelity(),
                self.data.is_some() && kind.labelled(),
            ) {
                let seed = self.suite.settings.seed;
                let out = synthetic_outputs(&m.arch, &m.weights, how.samples, seed);
                synthetic.insert(id.clone(), out);
            }
        }
        synthetic
    }

    /// The variant `id`'s output fidelity to its baseline `base_id` on synthetic inputs;
    /// `Err` when its outputs could not be computed.
    fn output_fidelity(
        &self,
        synthetic: &HashMap<String, Result<Vec<f32>, String>>,
        id: &str,
        base_id: Option<&str>,
        arch: &Architecture,
    ) -> Result<Option<OutputFidelity>, String> {
        match (synthetic.get(id), base_id.and_then(|b| synthetic.get(b))) {
            (Some(Ok(o)), Some(Ok(base))) if o.len() == base.len() => {
                let kind = arch.kind();
                Ok(kind.synthetic_fidelity().map(|how| {
                    let seed = self.suite.settings.seed;
                    let what = (kind.describe_synthetic(how.samples, seed), how.output);
                    let width = kind.outputs().max(1);
                    let b = base_id.unwrap_or_default();
                    quality::output_fidelity(b, what, o, base, width, how.top1)
                }))
            }
            (Some(Err(e)), _) => Err(format!("computing the outputs for fidelity failed: {e}")),
            _ => Ok(None),
        }
    }
}

/// The recipe in words; structured pruning says what the kind removes, and by which norm.
pub(super) fn recipe_text(v: &VariantDef) -> String {
    let structured = format!("structured ({})", v.arch.info().structured);
    v.recipe
        .describe()
        .replace("structured (L1 norm)", &structured)
}

/// The model's output on `n` seeded synthetic inputs (as the worker makes them), f32.
fn synthetic_outputs(
    arch: &Architecture,
    weights: &Weights,
    n: usize,
    seed: u64,
) -> Result<Vec<f32>, String> {
    let err = |e: candle_core::Error| error_text(&e);
    let cpu = candle_core::Device::Cpu;
    let mut net = arch
        .kind()
        .build(weights, Purpose::Inference)
        .map_err(err)?;
    let inputs = CaseInputs {
        raw_shape: None,
        text: None,
        seed,
    };
    let x = net.prepare(&[n], &inputs, &cpu)?;
    let y = net.forward(&x[0]).map_err(err)?;
    y.to_dtype(candle_core::DType::F32)
        .and_then(|y| y.flatten_all())
        .and_then(|y| y.to_vec1::<f32>())
        .map_err(err)
}

/// A sentence encoder's embeddings of the suite's sentences and of both sides of each pair.
struct Embedded {
    dataset: String,
    sentences: Vec<f32>,
    firsts: Vec<f32>,
    seconds: Vec<f32>,
    labels: Vec<f64>,
}

impl Embedded {
    fn quality(&self, arch: &Architecture, base: &Embedded, base_id: &str) -> EmbeddingQuality {
        let width = arch.kind().outputs();
        let pair_cosines = quality::row_cosines(&self.firsts, &self.seconds, width);
        quality::embedding_quality(
            &self.dataset,
            base_id,
            &self.sentences,
            &base.sentences,
            width,
            &pair_cosines,
            &self.labels,
        )
    }
}

/// Embeds the suite's sentences and both sides of each pair with the model's kind.
fn embed_text(
    arch: &Architecture,
    weights: &Weights,
    tokenizer: &Path,
    text: &TextData,
) -> Result<Embedded, String> {
    let kind = arch.kind();
    let firsts: Vec<String> = text.pairs.iter().map(|p| p.first.clone()).collect();
    let seconds: Vec<String> = text.pairs.iter().map(|p| p.second.clone()).collect();
    let mut embedded = kind
        .embed(weights, tokenizer, &[&text.sentences, &firsts, &seconds])?
        .into_iter();
    let mut next = || embedded.next().unwrap_or_default();
    Ok(Embedded {
        dataset: kind.describe_sentences(text),
        sentences: next(),
        firsts: next(),
        seconds: next(),
        labels: text.pairs.iter().map(|p| p.score).collect(),
    })
}

fn failed(v: &VariantDef, reason: String) -> BuiltVariant {
    BuiltVariant {
        id: v.id(),
        arch: v.arch.clone(),
        weights: WeightSource::Unbuilt {
            variant: v.id(),
            reason: Some(reason.clone()),
        },
        model_info: ModelInfo {
            params: v.arch.kind().param_count(),
            weight_bytes: 0,
            flops_per_sample: v.arch.kind().flops_per_sample(),
            recipe: Some(v.recipe.describe()),
            ..ModelInfo::default()
        },
        quality: None,
        embedding: None,
        llm_quality: None,
        output_fidelity: None,
        error: Some(reason),
    }
}
