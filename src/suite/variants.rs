//! The `[[variants]]` of a suite: each entry checked (`variant_entry.rs`), references
//! (`from`, `teacher`) resolved within the model, cycles reported, and each variant's
//! architecture worked out.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use super::models::ModelFields;
use super::recipe::*;
use super::schema::*;
use super::{valid_name, ModelDef, Validator, VariantDef, NAME_HINT};
use crate::model::{Architecture, WeightSource};

/// A `[[variants]]` entry after its own fields are checked, before references are resolved.
pub(super) struct Partial {
    pub(super) at: String,
    pub(super) name: String,
    pub(super) name_span: Range<usize>,
    pub(super) model: String,
    pub(super) recipe: Recipe,
    /// The `from` / `teacher` field and its span, when the recipe names another variant.
    pub(super) dep: Option<(String, Range<usize>)>,
    /// For `distill` and `compress`: the architecture, when it is valid.
    pub(super) own_arch: Option<Architecture>,
    pub(super) weights: Option<WeightSource>,
}

impl Validator {
    pub(super) fn variants(
        &mut self,
        variants: &[Spanned<VariantEntry>],
        tables: &[Spanned<DeValue<'_>>],
        models: &[ModelDef],
        fields: &[ModelFields<'_>],
        has_data: bool,
        default_seed: u64,
    ) -> Vec<VariantDef> {
        if variants.is_empty() {
            return baselines_only(models);
        }
        let mut partials =
            self.partials(variants, tables, (models, fields), has_data, default_seed);
        self.resolve_references(&mut partials);
        self.variant_defs(&partials, models)
    }

    /// Each entry with a valid name, a known model and a name not taken yet, checked by
    /// itself; references are not resolved yet.
    fn partials(
        &mut self,
        variants: &[Spanned<VariantEntry>],
        tables: &[Spanned<DeValue<'_>>],
        (models, fields): (&[ModelDef], &[ModelFields<'_>]),
        has_data: bool,
        default_seed: u64,
    ) -> Vec<Partial> {
        let mut seen = BTreeSet::new();
        let mut partials: Vec<Partial> = Vec::new();
        for (i, (v, table)) in variants.iter().zip(tables).enumerate() {
            let at = format!("variants[{i}]");
            let v = v.get_ref();
            let name = v.name.get_ref().clone();
            if !valid_name(&name) {
                self.problem(
                    format!("{at}.name"),
                    v.name.span(),
                    format!("`{name}` is not a valid name"),
                    Some(NAME_HINT),
                );
                continue;
            }
            let Some((model, own)) = models
                .iter()
                .zip(fields)
                .find(|(m, _)| &m.name == v.model.get_ref())
            else {
                let known: Vec<_> = models.iter().map(|m| format!("`{}`", m.name)).collect();
                let hint = format!("models defined in this suite: {}", known.join(", "));
                self.problem(
                    format!("{at}.model"),
                    v.model.span(),
                    format!("no model named `{}`", v.model.get_ref()),
                    Some(&hint),
                );
                continue;
            };
            if !seen.insert((model.name.clone(), name.clone())) {
                self.problem(
                    format!("{at}.name"),
                    v.name.span(),
                    format!(
                        "variant `{name}` of model `{}` is defined twice",
                        model.name
                    ),
                    None,
                );
                continue;
            }
            let entry = self.variant_entry(&at, v, (model, own), table, has_data, default_seed);
            if let Some(p) = entry {
                partials.push(Partial { name, ..p });
            }
        }
        partials
    }

    /// The variants whose architecture can be worked out, each distill variant followed by
    /// its twin trained without the teacher.
    fn variant_defs(&mut self, partials: &[Partial], models: &[ModelDef]) -> Vec<VariantDef> {
        // Architectures, following `from` chains (acyclic by now).
        let mut archs: BTreeMap<(String, String), Architecture> = BTreeMap::new();
        let index: BTreeMap<(String, String), usize> = partials
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.model.clone(), p.name.clone()), i))
            .collect();
        let mut out = Vec::new();
        let names: BTreeSet<(String, String)> = index.keys().cloned().collect();
        for p in partials {
            let key = (p.model.clone(), p.name.clone());
            let Some(arch) = arch_of(&key, partials, &index, models, &mut archs, 0) else {
                continue;
            };
            let id = format!("{}-{}", p.model, p.name);
            let weights = p.weights.clone().unwrap_or(WeightSource::Unbuilt {
                variant: id,
                reason: None,
            });
            let twin = match &p.recipe {
                Recipe::Distill { train, .. } => Some(train.clone()),
                _ => None,
            };
            out.push(VariantDef {
                name: p.name.clone(),
                model: p.model.clone(),
                source: p.recipe.source().into(),
                recipe: p.recipe.clone(),
                arch: arch.clone(),
                weights,
            });
            if let Some(train) = twin {
                // The same student, same recipe, without the teacher.
                let name = format!("{}_no_teacher", p.name);
                if names.contains(&(p.model.clone(), name.clone())) {
                    self.problem(
                        format!("{}.name", p.at),
                        p.name_span.clone(),
                        format!("a distill variant adds `{name}` (its student trained without the teacher), and that name is taken"),
                        Some("rename one of the two variants"),
                    );
                    continue;
                }
                out.push(VariantDef {
                    name: name.clone(),
                    model: p.model.clone(),
                    source: "compress".into(),
                    recipe: Recipe::Compress {
                        train,
                        twin_of: Some(p.name.clone()),
                    },
                    arch,
                    weights: WeightSource::Unbuilt {
                        variant: format!("{}-{name}", p.model),
                        reason: None,
                    },
                });
            }
        }
        out
    }

    /// `from` and `teacher` must name another variant of the same model, without cycles.
    fn resolve_references(&mut self, partials: &mut Vec<Partial>) {
        let names: BTreeSet<(String, String)> = partials
            .iter()
            .map(|p| (p.model.clone(), p.name.clone()))
            .collect();
        let mut bad = BTreeSet::new();
        for (i, p) in partials.iter().enumerate() {
            let Some((field, span)) = &p.dep else {
                continue;
            };
            let target = p.recipe.needs()[0].to_string();
            if target == p.name {
                self.problem(
                    field.clone(),
                    span.clone(),
                    format!("variant `{}` cannot be made from itself", p.name),
                    Some("name another variant of the same model, as in `baseline`"),
                );
                bad.insert(i);
            } else if !names.contains(&(p.model.clone(), target.clone())) {
                let known: Vec<String> = partials
                    .iter()
                    .filter(|q| q.model == p.model && q.name != p.name)
                    .map(|q| format!("`{}`", q.name))
                    .collect();
                let hint = if known.is_empty() {
                    format!(
                        "add a [[variants]] entry with name = \"{target}\" and model = \"{}\"",
                        p.model
                    )
                } else {
                    format!("variants of model `{}`: {}", p.model, known.join(", "))
                };
                self.problem(
                    field.clone(),
                    span.clone(),
                    format!("no variant `{target}` of model `{}`", p.model),
                    Some(&hint),
                );
                bad.insert(i);
            }
        }
        // Cycles: follow each chain; a chain that comes back to a variant is a cycle.
        let index: BTreeMap<(String, String), usize> = partials
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.model.clone(), p.name.clone()), i))
            .collect();
        let mut reported = BTreeSet::new();
        for start in 0..partials.len() {
            let mut path = vec![start];
            let mut at = start;
            while let Some(next) = partials[at]
                .recipe
                .needs()
                .first()
                .and_then(|n| index.get(&(partials[at].model.clone(), n.to_string())))
                .copied()
            {
                if bad.contains(&at) {
                    break;
                }
                if let Some(pos) = path.iter().position(|&p| p == next) {
                    let cycle: Vec<usize> = path[pos..].to_vec();
                    let first = *cycle.iter().min().expect("non-empty");
                    if reported.insert(first) {
                        let names: Vec<&str> = cycle
                            .iter()
                            .chain(std::iter::once(&cycle[0]))
                            .map(|&i| partials[i].name.as_str())
                            .collect();
                        let (field, span) = partials[first].dep.clone().expect("on a chain");
                        self.problem(
                            field,
                            span,
                            format!("`from`/`teacher` references make a cycle: {}", names.join(" -> ")),
                            Some("every chain of recipes must start at a `baseline` or `file` variant"),
                        );
                    }
                    bad.extend(cycle);
                    break;
                }
                path.push(next);
                at = next;
            }
        }
        // Drop the broken variants and, transitively, those made from them.
        loop {
            let before = bad.len();
            for (i, p) in partials.iter().enumerate() {
                if let Some(n) = p.recipe.needs().first() {
                    if let Some(&j) = index.get(&(p.model.clone(), n.to_string())) {
                        if bad.contains(&j) {
                            bad.insert(i);
                        }
                    }
                }
            }
            if bad.len() == before {
                break;
            }
        }
        let mut i = 0;
        partials.retain(|_| {
            i += 1;
            !bad.contains(&(i - 1))
        });
    }
}

/// No [[variants]]: each model is measured as its baseline.
fn baselines_only(models: &[ModelDef]) -> Vec<VariantDef> {
    models
        .iter()
        .map(|m| VariantDef {
            name: "baseline".into(),
            model: m.name.clone(),
            source: "baseline".into(),
            recipe: Recipe::Baseline,
            arch: m.arch.clone(),
            weights: baseline_weights(m, &format!("{}-baseline", m.name)),
        })
        .collect()
}

/// A variant's architecture: its model's, or its own (distill, compress), or the one it is
/// made from, pruned when the pruning is structured. Remembered in `archs`.
fn arch_of(
    key: &(String, String),
    partials: &[Partial],
    index: &BTreeMap<(String, String), usize>,
    models: &[ModelDef],
    archs: &mut BTreeMap<(String, String), Architecture>,
    depth: usize,
) -> Option<Architecture> {
    if let Some(a) = archs.get(key) {
        return Some(a.clone());
    }
    let p = &partials[*index.get(key)?];
    let model = &models.iter().find(|m| m.name == p.model)?.arch;
    if depth > partials.len() {
        return None;
    }
    let parent = |from: &str, archs: &mut BTreeMap<_, _>| {
        arch_of(
            &(p.model.clone(), from.to_string()),
            partials,
            index,
            models,
            archs,
            depth + 1,
        )
    };
    let arch = match &p.recipe {
        Recipe::Baseline => Some(model.clone()),
        Recipe::File { .. } => p.own_arch.clone().or_else(|| Some(model.clone())),
        Recipe::Quantize { from, .. } => parent(from, archs),
        Recipe::Prune {
            from,
            method,
            sparsity,
            ..
        } => parent(from, archs).and_then(|a| match method {
            PruneMethod::Magnitude => Some(a),
            PruneMethod::Structured => a.kind().structured(*sparsity),
        }),
        Recipe::Distill { .. } | Recipe::Compress { .. } => p.own_arch.clone(),
    }?;
    archs.insert(key.clone(), arch.clone());
    Some(arch)
}

/// The weights of a model's `baseline` variant: its own, or built when it is trained.
pub(super) fn baseline_weights(m: &ModelDef, id: &str) -> WeightSource {
    match m.train {
        Some(_) => WeightSource::Unbuilt {
            variant: id.to_string(),
            reason: None,
        },
        None => m.weights.clone(),
    }
}
