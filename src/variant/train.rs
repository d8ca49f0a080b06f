//! Training with candle-nn on the CPU: baselines, fine-tuning after pruning (with the pruning
//! masks held), students from scratch, and knowledge distillation (Hinton et al. 2015).
//!
//! Reproducible: initial weights come from the caller (seeded), and the batch order from a
//! ChaCha8 stream seeded by the recipe's `seed`; with the same thread count two runs give
//! bit-identical weights.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, SGD};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::model::{error_text, float_weights, Architecture, LoadedModel, Purpose};
use crate::schema::TrainingLog;
use crate::suite::recipe::{OptimizerKind, TrainSpec};

/// Training inputs and labels, already at the network's input size.
pub struct TrainSet {
    /// `[n, ...input_shape]`, f32.
    pub inputs: Tensor,
    /// `[n]`, u32 class numbers.
    pub labels: Tensor,
}

impl TrainSet {
    /// `inputs` (one `input_shape` per label) and their labels.
    pub fn new(
        inputs: Vec<f32>,
        labels: &[usize],
        input_shape: &[usize],
    ) -> candle_core::Result<Self> {
        let mut shape = vec![labels.len()];
        shape.extend(input_shape);
        Ok(TrainSet {
            inputs: Tensor::from_vec(inputs, shape, &Device::Cpu)?,
            labels: Tensor::new(
                labels.iter().map(|&y| y as u32).collect::<Vec<_>>(),
                &Device::Cpu,
            )?,
        })
    }
    /// The samples `indices` of `data`, as the model of `arch` takes them.
    pub fn of(arch: &Architecture, data: &Dataset, indices: &[usize]) -> Result<Self, String> {
        let kind = arch.kind();
        let inputs = kind.dataset_inputs(data, indices)?;
        TrainSet::new(inputs, &data.labels_of(indices), &kind.input_shape())
            .map_err(|e| error_text(&e))
    }

    pub fn len(&self) -> usize {
        self.inputs.dims()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Soft targets for distillation: the teacher's logits on the same training samples.
pub struct Distillation<'a> {
    pub teacher: &'a str,
    /// `[n, classes]`, f32.
    pub teacher_logits: &'a Tensor,
    pub temperature: f64,
    /// Weight of the soft-target term; `1 - alpha` weights the hard-label cross-entropy.
    pub alpha: f64,
}

enum Opt {
    AdamW(AdamW),
    Sgd(SGD),
}

impl Opt {
    fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        match self {
            Opt::AdamW(o) => o.backward_step(loss),
            Opt::Sgd(o) => o.backward_step(loss),
        }
    }
}

/// The distillation loss: `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`,
/// the KL term averaged over the batch. The `T^2` factor keeps the soft term's gradients at
/// the scale of the hard term's as `T` changes (Hinton et al.).
pub fn distillation_loss(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    temperature: f64,
    alpha: f64,
) -> candle_core::Result<Tensor> {
    let hard = candle_nn::loss::cross_entropy(student, labels)?;
    let t = (teacher / temperature)?;
    let p_t = candle_nn::ops::softmax(&t, 1)?;
    let log_p_t = candle_nn::ops::log_softmax(&t, 1)?;
    let log_p_s = candle_nn::ops::log_softmax(&(student / temperature)?, 1)?;
    let kl = (p_t * (log_p_t - log_p_s)?)?.sum(1)?.mean(0)?;
    (kl * (alpha * temperature * temperature))? + (hard * (1.0 - alpha))?
}

/// Trains `arch` from `init` (f32 tensors by name). `masks` (0/1 tensors by name) are
/// re-applied after every step so pruned weights stay zero. Returns the trained tensors.
pub fn train(
    arch: &Architecture,
    init: &HashMap<String, Tensor>,
    set: &TrainSet,
    spec: &TrainSpec,
    masks: Option<&HashMap<String, Tensor>>,
    distill: Option<&Distillation<'_>>,
) -> candle_core::Result<(HashMap<String, Tensor>, TrainingLog)> {
    let started = Instant::now();
    let mut names: Vec<&String> = init.keys().collect();
    names.sort();
    let mut vars: Vec<(String, Var)> = Vec::with_capacity(names.len());
    for name in names {
        // `from_tensor` copies: the caller's tensors are left as they were.
        let var = Var::from_tensor(&init[name].to_dtype(DType::F32)?)?;
        vars.push((name.clone(), var));
    }
    let variables = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let mut net = arch
        .kind()
        .build(&float_weights(variables), Purpose::Training)?;
    let list: Vec<Var> = vars.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = match spec.optimizer {
        OptimizerKind::Adamw => Opt::AdamW(AdamW::new(
            list,
            ParamsAdamW {
                lr: spec.lr,
                weight_decay: spec.weight_decay,
                ..ParamsAdamW::default()
            },
        )?),
        OptimizerKind::Sgd => Opt::Sgd(SGD::new(list, spec.lr)?),
    };
    let n = set.len();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x7261_696e);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut losses = Vec::with_capacity(spec.epochs);
    let mut train_accuracy = 0.0;
    for _ in 0..spec.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0.0f64);
        for chunk in order.chunks(spec.batch_size.max(1)) {
            let idx = Tensor::new(chunk, &Device::Cpu)?;
            let x = set.inputs.index_select(&idx, 0)?;
            let y = set.labels.index_select(&idx, 0)?;
            let logits = net.forward(&x)?;
            let loss = match distill {
                Some(d) => distillation_loss(
                    &logits,
                    &d.teacher_logits.index_select(&idx, 0)?,
                    &y,
                    d.temperature,
                    d.alpha,
                )?,
                None => candle_nn::loss::cross_entropy(&logits, &y)?,
            };
            opt.backward_step(&loss)?;
            if let Some(masks) = masks {
                for (name, var) in &vars {
                    if let Some(m) = masks.get(name) {
                        var.set(&(var.as_tensor() * m)?)?;
                    }
                }
            }
            loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
            correct += logits
                .argmax(1)?
                .eq(&y)?
                .to_dtype(DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        losses.push(loss_sum / n.max(1) as f64);
        train_accuracy = correct / n.max(1) as f64;
    }
    let trained = vars
        .into_iter()
        .map(|(k, v)| Ok((k, v.as_detached_tensor().copy()?)))
        .collect::<candle_core::Result<HashMap<_, _>>>()?;
    let log = TrainingLog {
        epochs: spec.epochs,
        batch_size: spec.batch_size,
        optimizer: match spec.optimizer {
            OptimizerKind::Adamw => "adamw".into(),
            OptimizerKind::Sgd => "sgd".into(),
        },
        lr: spec.lr,
        seed: spec.seed,
        train_samples: n,
        loss_per_epoch: losses,
        train_accuracy,
        teacher: distill.map(|d| d.teacher.to_string()),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((trained, log))
}

/// Logits of `net` for `inputs` (`[n, ...]` f32), in batches, as f32 values `[n, classes]`.
pub fn logits(
    net: &mut dyn LoadedModel,
    inputs: &Tensor,
    batch: usize,
) -> candle_core::Result<Vec<f32>> {
    let n = inputs.dims()[0];
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let x = inputs.narrow(0, start, len)?.to_dtype(net.input_dtype())?;
        let y = net.forward(&x)?.to_dtype(DType::F32)?;
        out.extend(y.flatten_all()?.to_vec1::<f32>()?);
        start += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{self, DataSource, DataSpec, Resize};
    use crate::model::mlp::Mlp;
    use crate::model::seeded_weights;

    pub(crate) fn digits() -> data::Dataset {
        data::load(&DataSpec {
            source: DataSource::Digits,
            shape: None,
            scale: 16.0,
            test_fraction: 0.2,
            seed: 0,
            resize: Resize::None,
        })
        .unwrap()
    }

    fn spec(epochs: usize) -> TrainSpec {
        TrainSpec {
            epochs,
            batch_size: 32,
            optimizer: OptimizerKind::Adamw,
            lr: 0.01,
            weight_decay: 0.0,
            seed: 7,
        }
    }

    fn network(arch: &Architecture, w: HashMap<String, Tensor>) -> Box<dyn LoadedModel> {
        arch.kind()
            .build(&float_weights(w), Purpose::Inference)
            .unwrap()
    }

    fn mlp(hidden: usize) -> Architecture {
        Architecture::Mlp(Mlp {
            input_size: 64,
            hidden: vec![hidden],
            classes: 10,
        })
    }

    fn accuracy(arch: &Architecture, w: HashMap<String, Tensor>, ds: &data::Dataset) -> f64 {
        let mut net = network(arch, w);
        let x = TrainSet::of(arch, ds, &ds.test).unwrap();
        let out = logits(net.as_mut(), &x.inputs, 128).unwrap();
        let pred = crate::quality::argmax_rows(&out, arch.kind().outputs());
        let y = ds.labels_of(&ds.test);
        pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
    }

    #[test]
    fn training_is_reproducible_and_learns_the_digits() {
        let ds = digits();
        let arch = mlp(32);
        let set = TrainSet::of(&arch, &ds, &ds.train).unwrap();
        let init = seeded_weights(arch.kind(), 1, &Device::Cpu).unwrap();
        let (a, log) = train(&arch, &init, &set, &spec(3), None, None).unwrap();
        let (b, _) = train(&arch, &init, &set, &spec(3), None, None).unwrap();
        for (k, t) in &a {
            let d = (t - &b[k]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(
                d.to_scalar::<f32>().unwrap(),
                0.0,
                "{k} differs between runs"
            );
        }
        assert_eq!(log.loss_per_epoch.len(), 3);
        assert!(log.loss_per_epoch[2] < log.loss_per_epoch[0], "{log:?}");
        assert!(accuracy(&arch, a, &ds) > 0.85);
    }

    #[test]
    fn distillation_loss_by_hand() {
        // Equal logits: KL = 0, so the loss is (1 - alpha) * CE of uniform = (1-a) ln 2.
        let s = Tensor::new(&[[0.0f32, 0.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1u32], &Device::Cpu).unwrap();
        let l = distillation_loss(&s, &s, &y, 2.0, 0.25).unwrap();
        let v = l.to_scalar::<f32>().unwrap() as f64;
        assert!((v - 0.75 * 2f64.ln()).abs() < 1e-6, "{v}");
        // alpha = 1, T = 1, teacher [ln 3, 0] -> p = [3/4, 1/4]; student uniform:
        // KL = 3/4 ln(3/2) + 1/4 ln(1/2).
        let t = Tensor::new(&[[3f32.ln(), 0.0]], &Device::Cpu).unwrap();
        let l = distillation_loss(&s, &t, &y, 1.0, 1.0).unwrap();
        let kl = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
        assert!(((l.to_scalar::<f32>().unwrap() as f64) - kl).abs() < 1e-6);
    }

    /// A small distillation run on the shipped digits converges: the student, trained on
    /// a teacher's soft targets, scores far above chance (0.1) on the test split.
    #[test]
    fn a_small_distillation_run_converges() {
        let ds = digits();
        let teacher_arch = mlp(64);
        let student = mlp(8);
        let set = TrainSet::of(&teacher_arch, &ds, &ds.train).unwrap();
        let init = seeded_weights(teacher_arch.kind(), 1, &Device::Cpu).unwrap();
        let (teacher, _) = train(&teacher_arch, &init, &set, &spec(3), None, None).unwrap();
        let mut net = network(&teacher_arch, teacher);
        let soft = logits(net.as_mut(), &set.inputs, 256).unwrap();
        let soft = Tensor::from_vec(soft, (set.len(), 10), &Device::Cpu).unwrap();
        let d = Distillation {
            teacher: "teacher",
            teacher_logits: &soft,
            temperature: 4.0,
            alpha: 0.7,
        };
        let init = seeded_weights(student.kind(), 2, &Device::Cpu).unwrap();
        let (w, log) = train(&student, &init, &set, &spec(4), None, Some(&d)).unwrap();
        assert_eq!(log.teacher.as_deref(), Some("teacher"));
        let acc = accuracy(&student, w, &ds);
        assert!(acc > 0.7, "distilled student accuracy {acc}");
    }
}
