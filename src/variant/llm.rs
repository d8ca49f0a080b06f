//! Language-model variants (`arch = "llm"`): the model's own GGUF (`baseline`), another GGUF
//! (`file`), or the file requantized by `llm::requant` into the artifact cache (`quantize`,
//! keyed by the parent's key, which hashes its file, and the dtype). Then each model's
//! variants are scored together in one pass over the quality chunks (perplexity, and the KL
//! divergence from the baseline: `llm::quality::score_against`), outside any timed loop, and
//! their size figures read from their files' headers (docs/llm.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde_json::json;

use super::artifact::{self, Manifest};
use super::{file_len, BuildObserver, Builder, Made};
use crate::llm::gguf::{self, GgufInfo};
use crate::llm::quality::{score_against, ChunkPlan, KlDivergence, Perplexity};
use crate::llm::requant::{requantize, TargetType};
use crate::llm::tokens::TokenIds;
use crate::llm::LlmModel;
use crate::model::llm::{Llm, QualitySpec};
use crate::model::{Architecture, WeightSource, Weights};
use crate::schema::{ArtifactInfo, FloatLayer, LlmKld, LlmModelInfo, LlmQuality, ModelInfo};
use crate::suite::recipe::Recipe;
use crate::suite::VariantDef;

/// A variant and what building it made.
type Pair<'a> = (&'a VariantDef, &'a Made);

/// Perplexity chunks a `run --quick` scores at most.
pub const QUICK_CHUNKS: usize = 1;

/// Bumped when the quality scores' computation changes, so cached scores are not reused.
const QUALITY_FORMAT: u32 = 1;

/// The language-model spec of an architecture, if it is one.
pub(super) fn spec_of(arch: &Architecture) -> Option<&Llm> {
    arch.kind().as_any()?.downcast_ref::<Llm>()
}

fn gguf_path(source: &WeightSource) -> Result<&Path, String> {
    match source {
        WeightSource::Gguf { path } => Ok(path),
        _ => Err("an `llm`'s weights are a GGUF file".into()),
    }
}

/// A language-model variant's scores: its file's header, and its quality when the model asks
/// for it.
pub(super) struct LlmScore {
    pub info: Result<GgufInfo, String>,
    pub quality: Option<Result<LlmQuality, String>>,
}

impl Builder<'_> {
    /// A language-model variant: its file, or the parent's file requantized.
    pub(super) fn make_llm(&self, v: &VariantDef) -> Result<Made, String> {
        match &v.recipe {
            Recipe::Baseline => self.llm_file(v, &self.model(&v.model).weights),
            Recipe::File { path } => self.llm_file(v, &WeightSource::Gguf { path: path.clone() }),
            Recipe::Quantize { from, dtype } => {
                let parent = self.parent(v, from)?;
                let src = gguf_path(&parent.source)?.to_path_buf();
                let target: TargetType = dtype.as_str().parse()?;
                let inputs = json!({"recipe": "requantize", "dtype": target.as_str(),
                    "parent": parent.key, "format": "gguf"});
                self.requantized(v, inputs, &src, target)
            }
            other => Err(format!(
                "`{}` variants cannot be made of an `llm`",
                other.source()
            )),
        }
    }

    fn llm_file(&self, v: &VariantDef, source: &WeightSource) -> Result<Made, String> {
        let path = gguf_path(source)?;
        gguf::inspect(path).map_err(|e| e.to_string())?;
        let sha = artifact::file_sha256(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Made {
            arch: v.arch.clone(),
            weights: Weights::new(),
            key: artifact::key(&json!({"init": "file", "sha256": sha})),
            source: source.clone(),
            artifact: None,
            artifact_bytes: file_len(path),
            // Not computed for language models: no pruning zeros to show, and a costly pass.
            gzip_bytes: None,
            float_layers: None,
            sparsity: None,
            training: None,
        })
    }

    /// The cached requantized file for `inputs`, or `src` requantized to `target` and stored.
    fn requantized(
        &self,
        v: &VariantDef,
        mut inputs: serde_json::Value,
        src: &Path,
        target: TargetType,
    ) -> Result<Made, String> {
        inputs["inferbench_llm"] = json!("requant-v1");
        let key = artifact::key(&inputs);
        let cached = if self.rebuild {
            None
        } else {
            self.cache.lookup(&key)
        };
        let (manifest, path, hit) = match cached {
            Some((m, p)) => (m, p, true),
            None => {
                // Built beside the cache, then moved in by `store` with its manifest.
                let tmp = self
                    .cache
                    .dir(&format!(".requant-{key}-{}.gguf", std::process::id()));
                if let Some(dir) = tmp.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let started = Instant::now();
                let built = requantize(src, &tmp, target).map_err(|e| e.to_string());
                let built = match built {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                };
                let manifest = Manifest {
                    key: key.clone(),
                    inputs,
                    built_for: v.id(),
                    recipe: v.recipe.describe(),
                    arch: v.arch.clone(),
                    file: "weights.gguf".into(),
                    float_layers: Some(
                        built
                            .fallbacks
                            .into_iter()
                            .map(|f| FloatLayer {
                                tensor: f.tensor,
                                dtype: f.used,
                                reason: f.reason,
                            })
                            .collect(),
                    ),
                    sparsity: None,
                    training: None,
                    build_s: started.elapsed().as_secs_f64(),
                    gzip_bytes: 0,
                    inferbench_version: env!("CARGO_PKG_VERSION").into(),
                };
                let stored = self.cache.store(manifest, |dst| {
                    std::fs::rename(&tmp, dst)
                        .map_err(|e| format!("cannot move {} into the cache: {e}", tmp.display()))
                });
                let _ = std::fs::remove_file(&tmp);
                let (m, p) = stored?;
                (m, p, false)
            }
        };
        gguf::inspect(&path).map_err(|e| format!("the artifact does not load back: {e}"))?;
        Ok(Made {
            arch: v.arch.clone(),
            weights: Weights::new(),
            key,
            source: WeightSource::Gguf { path: path.clone() },
            artifact: Some(ArtifactInfo {
                path: path.clone(),
                format: "gguf".into(),
                key: manifest.key.clone(),
                cache_hit: hit,
                build_s: manifest.build_s,
            }),
            artifact_bytes: file_len(&path),
            gzip_bytes: Some(manifest.gzip_bytes),
            float_layers: manifest.float_layers,
            sparsity: None,
            training: None,
        })
    }

    /// Every built language-model variant's header and quality, by id: each model's
    /// variants scored in one pass over its chunks, against its baseline when it has one.
    pub(super) fn score_llm(&self, observer: &mut dyn BuildObserver) -> HashMap<String, LlmScore> {
        let mut out = HashMap::new();
        for model in &self.suite.models {
            let Some(spec) = spec_of(&model.arch) else {
                continue;
            };
            let made: Vec<(&VariantDef, &Made)> = self
                .suite
                .variants
                .iter()
                .filter(|v| v.model == model.name)
                .filter_map(|v| match self.made.get(&v.id()) {
                    Some(Ok(m)) => Some((v, m)),
                    _ => None,
                })
                .collect();
            let qualities = match &spec.quality {
                Some(q) => {
                    observer.scoring(&model.name, &quality_words(q, self.quick));
                    self.quality_of(&made, q)
                }
                None => HashMap::new(),
            };
            for (v, m) in made {
                let id = v.id();
                let info =
                    gguf_path(&m.source).and_then(|p| gguf::inspect(p).map_err(|e| e.to_string()));
                let quality = qualities.get(&id).cloned();
                out.insert(id, LlmScore { info, quality });
            }
        }
        out
    }

    /// The quality of each of `made` (one model's variants), from the score cache where it
    /// is there, else computed in one pass.
    fn quality_of(
        &self,
        made: &[(&VariantDef, &Made)],
        q: &QualitySpec,
    ) -> HashMap<String, Result<LlmQuality, String>> {
        let all_fail = |e: String| {
            made.iter()
                .map(|(v, _)| (v.id(), Err(e.clone())))
                .collect::<HashMap<_, _>>()
        };
        let ids = match TokenIds::read(&q.tokens) {
            Ok(ids) => ids,
            Err(e) => return all_fail(e.to_string()),
        };
        let chunks = if self.quick {
            q.chunks.min(QUICK_CHUNKS)
        } else {
            q.chunks
        };
        let plan = match ChunkPlan::new(ids.ids.len(), q.ctx, Some(chunks)) {
            Ok(p) => p,
            Err(e) => return all_fail(e.to_string()),
        };
        let tokens_sha = artifact::file_sha256(&q.tokens).unwrap_or_default();
        let dataset = format!(
            "{}: {} ids by {}, ctx {}, {} chunk(s), second halves scored",
            short_path(&q.tokens),
            ids.ids.len(),
            ids.source.tokenizer,
            plan.ctx,
            plan.chunks
        );
        let baseline = made.iter().find(|(v, _)| v.recipe == Recipe::Baseline);
        let cache_key = |m: &Made| {
            artifact::key(&json!({"llm_quality": QUALITY_FORMAT, "variant": m.key,
                "baseline": baseline.map(|(_, b)| b.key.clone()), "tokens": tokens_sha,
                "ctx": plan.ctx, "chunks": plan.chunks}))
        };
        let cache_file = |m: &Made| {
            self.cache
                .dir("llm-quality")
                .join(format!("{}.json", cache_key(m)))
        };
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        for (v, m) in made {
            let cached = (!self.rebuild)
                .then(|| std::fs::read_to_string(cache_file(m)).ok())
                .flatten()
                .and_then(|t| serde_json::from_str::<LlmQuality>(&t).ok());
            match cached {
                Some(quality) => {
                    out.insert(v.id(), Ok(quality));
                }
                None => missing.push((*v, *m)),
            }
        }
        if missing.is_empty() {
            return out;
        }
        let groups: Vec<(&Pair, Vec<&Pair>)> = match baseline {
            // The baseline runs in any case (the others' reference); its own score too.
            Some(base) => vec![(
                base,
                missing
                    .iter()
                    .filter(|(v, _)| v.recipe != Recipe::Baseline)
                    .collect(),
            )],
            None => missing.iter().map(|m| (m, Vec::new())).collect(),
        };
        for (base, others) in groups {
            let scored = score_group(base.1, &others, &ids.ids, &plan);
            let base_id = base.0.id();
            let mut results = vec![(base, None)];
            results.extend(others.iter().map(|o| (*o, Some(base_id.as_str()))));
            for (i, ((v, m), reference)) in results.into_iter().enumerate() {
                let quality = scored.as_ref().map_err(Clone::clone).map(|s| {
                    let seconds = s.seconds.get(i).copied().unwrap_or(0.0);
                    match (i, reference) {
                        (0, _) | (_, None) => {
                            quality_record(&dataset, q, &ids, &plan, &s.baseline, None, seconds)
                        }
                        (_, Some(r)) => {
                            let k = &s.against[i - 1];
                            quality_record(
                                &dataset,
                                q,
                                &ids,
                                &plan,
                                &k.perplexity,
                                Some((r, k)),
                                seconds,
                            )
                        }
                    }
                });
                if let Ok(quality) = &quality {
                    let file = cache_file(m);
                    if let Some(dir) = file.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    if let Ok(text) = serde_json::to_string_pretty(quality) {
                        let _ = std::fs::write(&file, text);
                    }
                }
                out.entry(v.id()).or_insert(quality);
            }
        }
        out
    }
}

/// What the scoring does, for the build's progress line.
fn quality_words(q: &QualitySpec, quick: bool) -> String {
    let chunks = if quick {
        q.chunks.min(QUICK_CHUNKS)
    } else {
        q.chunks
    };
    format!(
        "perplexity and KL divergence on {} ({chunks} chunk(s) of {} tokens{})",
        short_path(&q.tokens),
        q.ctx,
        if quick { ", --quick" } else { "" }
    )
}

/// `kjv-genesis/smollm2.npy`: the file and its folder, the same on every machine.
fn short_path(p: &Path) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match p.parent().map(name).filter(|d| !d.is_empty()) {
        Some(dir) => format!("{dir}/{}", name(p)),
        None => name(p),
    }
}

/// What one pass found: the group's first model's perplexity, the others against it.
struct GroupScores {
    baseline: Perplexity,
    against: Vec<KlDivergence>,
    seconds: Vec<f64>,
}

/// Loads the group's models and scores them in one pass (on the CPU, with candle's default
/// threads).
fn score_group(
    base: &Made,
    others: &[&(&VariantDef, &Made)],
    ids: &[u32],
    plan: &ChunkPlan,
) -> Result<GroupScores, String> {
    let load = |m: &Made| -> Result<LlmModel, String> {
        let path = gguf_path(&m.source)?;
        LlmModel::load(path, &Device::Cpu).map_err(|e| e.to_string())
    };
    let mut baseline = load(base)?;
    let mut models: Vec<LlmModel> = others
        .iter()
        .map(|(_, m)| load(m))
        .collect::<Result<_, _>>()?;
    let mut refs: Vec<&mut LlmModel> = models.iter_mut().collect();
    let s = score_against(&mut baseline, &mut refs, ids, plan).map_err(|e| e.to_string())?;
    Ok(GroupScores {
        baseline: s.baseline,
        against: s.against,
        seconds: s.seconds,
    })
}

fn quality_record(
    dataset: &str,
    q: &QualitySpec,
    ids: &TokenIds,
    plan: &ChunkPlan,
    ppl: &Perplexity,
    against: Option<(&str, &KlDivergence)>,
    seconds: f64,
) -> LlmQuality {
    LlmQuality {
        dataset: dataset.to_string(),
        tokens_file: PathBuf::from(&q.tokens),
        tokenizer: ids.source.tokenizer.clone(),
        ctx: plan.ctx,
        chunks: plan.chunks,
        scored_tokens: ppl.tokens,
        perplexity: ppl.ppl,
        perplexity_uncertainty: ppl.uncertainty,
        mean_nll: ppl.mean_nll,
        kld: against.map(|(reference, k)| LlmKld {
            reference: reference.to_string(),
            mean: k.mean,
            uncertainty: k.uncertainty,
            median: k.median,
            p99: k.p99,
            max: k.max,
            same_top: k.same_top,
            same_top_uncertainty: k.same_top_uncertainty,
            rms_dp: k.rms_dp,
            rms_dp_uncertainty: k.rms_dp_uncertainty,
            ln_ppl_ratio: k.ln_ppl_ratio,
            ln_ppl_ratio_uncertainty: k.ln_ppl_ratio_uncertainty,
            baseline_perplexity: k.baseline_perplexity.ppl,
        }),
        seconds,
    }
}

/// A language-model variant's size figures from its file's header, in place of the
/// tensor-by-tensor ones (`compression_rate` against the baseline's bytes).
pub(super) fn model_info(
    mut m: ModelInfo,
    info: &GgufInfo,
    arch: &Architecture,
    base_bytes: Option<u64>,
) -> ModelInfo {
    let matrices: Vec<&String> = info.tensor_types.keys().filter(|t| *t != "f32").collect();
    m.params = info.parameters as usize;
    m.weight_bytes = info.weight_bytes as usize;
    m.flops_per_sample = arch.kind().flops_per_sample();
    m.params_nonzero = None;
    m.dtype = Some(match matrices.as_slice() {
        [] => "f32".to_string(),
        [one] => (*one).clone(),
        many => format!(
            "mixed({})",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("+")
        ),
    });
    m.compression_rate = base_bytes
        .filter(|_| info.weight_bytes > 0)
        .map(|b| b as f64 / info.weight_bytes as f64);
    m.llm = Some(LlmModelInfo {
        architecture: info.architecture.clone(),
        name: info.name.clone(),
        file_bytes: info.file_bytes,
        layers: info.layers,
        heads: info.heads,
        kv_heads: info.kv_heads,
        head_dim: info.head_dim,
        embedding_length: info.embedding_length,
        context_length: info.context_length,
        max_context: info.max_context,
        vocab_size: info.vocab_size,
        tensor_types: info.tensor_types.clone(),
        tied_embeddings: info.tied_embeddings,
        tokenizer: info
            .tokenizer_model
            .as_ref()
            .map(|m| match &info.tokenizer_pre {
                Some(pre) => format!("{m}/{pre}"),
                None => m.clone(),
            }),
        kv_bytes_per_token: info.kv_cache_bytes(1),
    });
    m
}
