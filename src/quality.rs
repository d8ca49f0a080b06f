//! Quality of a classifier's outputs: accuracy, per-class and averaged precision, recall and
//! F1, the confusion matrix, and fidelity to a reference model's outputs. Pure: plain slices
//! in, plain serde data out; no I/O, no candle.
//!
//! Definitions follow scikit-learn (`sklearn.metrics`), so anyone can recompute them:
//! - `confusion_matrix[i][j]` counts samples of true class `i` predicted as class `j`.
//! - precision = TP / (TP + FP), recall = TP / (TP + FN),
//!   F1 = 2 TP / (2 TP + FP + FN); a zero denominator gives 0 (`zero_division = 0`).
//! - Macro averages are unweighted means over the classes that occur in the true labels or
//!   the predictions (scikit-learn's default label set); weighted averages weight each class
//!   by its support (number of true samples).

use crate::schema::{ClassScores, EmbeddingQuality, Fidelity, OutputFidelity, QualityInfo};

/// The index of the largest value of each row of `outputs` (`width` values per row); the
/// first index wins a tie, as numpy's `argmax` does. NaN never wins.
pub fn argmax_rows(outputs: &[f32], width: usize) -> Vec<usize> {
    if width == 0 {
        return Vec::new();
    }
    outputs
        .chunks(width)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// `confusion[t][p]`: samples of true class `t` predicted as `p`. Labels at or above
/// `classes` are counted in an enlarged matrix so nothing is silently dropped.
pub fn confusion_matrix(labels: &[usize], predictions: &[usize], classes: usize) -> Vec<Vec<u64>> {
    let n = labels
        .iter()
        .chain(predictions)
        .map(|&c| c + 1)
        .max()
        .unwrap_or(0)
        .max(classes);
    let mut m = vec![vec![0u64; n]; n];
    for (&t, &p) in labels.iter().zip(predictions) {
        m[t][p] += 1;
    }
    m
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Scores predictions against true labels (same length). `dataset` names what was scored.
pub fn classification(
    dataset: &str,
    labels: &[usize],
    predictions: &[usize],
    classes: usize,
) -> QualityInfo {
    assert_eq!(labels.len(), predictions.len(), "one prediction per label");
    let m = confusion_matrix(labels, predictions, classes);
    let n = m.len();
    let mut per_class = Vec::with_capacity(n);
    let mut present = Vec::with_capacity(n);
    for c in 0..n {
        let tp = m[c][c];
        let support: u64 = m[c].iter().sum();
        let predicted: u64 = m.iter().map(|row| row[c]).sum();
        let (fp, fn_) = (predicted - tp, support - tp);
        per_class.push(ClassScores {
            class: c,
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            support,
        });
        present.push(support > 0 || predicted > 0);
    }
    let total: u64 = per_class.iter().map(|c| c.support).sum();
    let correct: u64 = (0..n).map(|c| m[c][c]).sum();
    let used: Vec<&ClassScores> = per_class
        .iter()
        .zip(&present)
        .filter(|(_, &p)| p)
        .map(|(c, _)| c)
        .collect();
    let macro_avg = |f: fn(&ClassScores) -> f64| {
        if used.is_empty() {
            0.0
        } else {
            used.iter().map(|c| f(c)).sum::<f64>() / used.len() as f64
        }
    };
    let weighted = |f: fn(&ClassScores) -> f64| {
        if total == 0 {
            0.0
        } else {
            per_class
                .iter()
                .map(|c| f(c) * c.support as f64)
                .sum::<f64>()
                / total as f64
        }
    };
    QualityInfo {
        dataset: dataset.to_string(),
        samples: labels.len(),
        accuracy: ratio(correct, total),
        precision_macro: macro_avg(|c| c.precision),
        recall_macro: macro_avg(|c| c.recall),
        f1_macro: macro_avg(|c| c.f1),
        precision_weighted: weighted(|c| c.precision),
        recall_weighted: weighted(|c| c.recall),
        f1_weighted: weighted(|c| c.f1),
        per_class,
        confusion_matrix: m,
        zero_division: 0.0,
        fidelity: None,
    }
}

/// Fidelity of `outputs` to `reference` (same shape, `width` values per sample). Cosine of a
/// zero vector with anything is taken as 0, except two zero vectors, which agree (1).
pub fn fidelity(
    reference_name: &str,
    outputs: &[f32],
    reference: &[f32],
    width: usize,
) -> Fidelity {
    assert_eq!(outputs.len(), reference.len(), "outputs of the same shape");
    let a = argmax_rows(outputs, width);
    let b = argmax_rows(reference, width);
    let samples = a.len();
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let mut cos_sum = 0.0;
    for (x, y) in outputs.chunks(width).zip(reference.chunks(width)) {
        let dot: f64 = x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum();
        let nx: f64 = x.iter().map(|&p| (p as f64).powi(2)).sum::<f64>().sqrt();
        let ny: f64 = y.iter().map(|&q| (q as f64).powi(2)).sum::<f64>().sqrt();
        cos_sum += match (nx == 0.0, ny == 0.0) {
            (true, true) => 1.0,
            (false, false) => dot / (nx * ny),
            _ => 0.0,
        };
    }
    let max_abs_diff = outputs
        .iter()
        .zip(reference)
        .map(|(&p, &q)| (p as f64 - q as f64).abs())
        .fold(0.0, f64::max);
    Fidelity {
        reference: reference_name.to_string(),
        top1_agreement: ratio(agree as u64, samples as u64),
        mean_cosine: if samples == 0 {
            0.0
        } else {
            cos_sum / samples as f64
        },
        max_abs_diff,
    }
}

/// Fidelity of any output to the reference's on the same inputs (`width` values per
/// sample): [`fidelity`]'s figures, the worst sample's cosine, and top-1 agreement only
/// where `top1` says the values are class scores.
pub fn output_fidelity(
    reference_name: &str,
    (inputs, output): (String, String),
    outputs: &[f32],
    reference: &[f32],
    width: usize,
    top1: bool,
) -> OutputFidelity {
    let f = fidelity(reference_name, outputs, reference, width);
    let cosines: Vec<f64> = outputs
        .chunks(width)
        .zip(reference.chunks(width))
        .map(|(x, y)| fidelity("", x, y, width).mean_cosine)
        .collect();
    OutputFidelity {
        reference: f.reference,
        inputs,
        samples: cosines.len(),
        output,
        width,
        top1_agreement: top1.then_some(f.top1_agreement),
        mean_cosine: f.mean_cosine,
        min_cosine: cosines
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(1.0),
        max_abs_diff: f.max_abs_diff,
    }
}

/// Cosine similarity of two vectors; 0 when either is all zeros.
pub fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let dot: f64 = x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum();
    let nx: f64 = x.iter().map(|&p| (p as f64).powi(2)).sum::<f64>().sqrt();
    let ny: f64 = y.iter().map(|&q| (q as f64).powi(2)).sum::<f64>().sqrt();
    if nx == 0.0 || ny == 0.0 {
        0.0
    } else {
        dot / (nx * ny)
    }
}

/// Cosine of each row of `a` with the same row of `b` (`width` values per row).
pub fn row_cosines(a: &[f32], b: &[f32], width: usize) -> Vec<f64> {
    a.chunks(width)
        .zip(b.chunks(width))
        .map(|(x, y)| cosine(x, y))
        .collect()
}

/// Pearson correlation; `None` for fewer than two values or a constant series.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Ranks from 1, ties given their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[order[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation: Pearson's on the ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

/// Embedding quality of `embeddings` (`width` per sentence) against `reference` (the same
/// sentences through the baseline), and of `pair_cosines` against `labels`.
pub fn embedding_quality(
    dataset: &str,
    reference_name: &str,
    embeddings: &[f32],
    reference: &[f32],
    width: usize,
    pair_cosines: &[f64],
    labels: &[f64],
) -> EmbeddingQuality {
    assert_eq!(
        embeddings.len(),
        reference.len(),
        "embeddings of the same sentences"
    );
    let cos = row_cosines(embeddings, reference, width);
    let has_pairs = !labels.is_empty();
    EmbeddingQuality {
        dataset: dataset.to_string(),
        sentences: cos.len(),
        reference: reference_name.to_string(),
        mean_cosine: if cos.is_empty() {
            0.0
        } else {
            cos.iter().sum::<f64>() / cos.len() as f64
        },
        min_cosine: cos.iter().copied().fold(f64::INFINITY, f64::min).min(1.0),
        pairs: has_pairs.then_some(labels.len()),
        spearman: if has_pairs {
            spearman(pair_cosines, labels)
        } else {
            None
        },
        pearson: if has_pairs {
            pearson(pair_cosines, labels)
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values checked with scipy.stats.spearmanr / pearsonr:
    /// x = [1, 2, 3, 4, 5], y = [2, 1, 4, 3, 5]: spearman 0.8, pearson 0.8;
    /// ties: x = [1, 2, 2, 3], y = [1, 3, 2, 4]: spearman 0.9486832980505138.
    #[test]
    fn correlations_match_scipy() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 1.0, 4.0, 3.0, 5.0];
        assert!(close(spearman(&x, &y).unwrap(), 0.8));
        assert!(close(pearson(&x, &y).unwrap(), 0.8));
        assert_eq!(ranks(&[1.0, 2.0, 2.0, 3.0]), vec![1.0, 2.5, 2.5, 4.0]);
        let s = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((s - 0.9486832980505138).abs() < 1e-12, "{s}");
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(spearman(&[1.0], &[1.0]), None);
    }

    /// Any output against its reference: sample 1 identical, sample 2 at 90 degrees with
    /// its largest value moved; top-1 only for class scores.
    #[test]
    fn output_fidelity_worst_sample_and_top1_where_it_applies() {
        let reference = [3.0f32, 1.0, 0.0, 2.0];
        let variant = [3.0f32, 1.0, 2.0, 0.0];
        let what = || ("synthetic".to_string(), "logits".to_string());
        let f = output_fidelity("m-baseline", what(), &variant, &reference, 2, true);
        assert_eq!((f.samples, f.width), (2, 2));
        assert_eq!(f.top1_agreement, Some(0.5));
        assert!(
            close(f.mean_cosine, 0.5) && close(f.min_cosine, 0.0),
            "{f:?}"
        );
        assert_eq!(f.max_abs_diff, 2.0);
        let e = output_fidelity("m-baseline", what(), &variant, &reference, 2, false);
        assert_eq!(e.top1_agreement, None);
        let same = output_fidelity("m-baseline", what(), &reference, &reference, 2, false);
        assert!(close(same.min_cosine, 1.0) && same.max_abs_diff == 0.0);
    }

    #[test]
    fn embedding_fidelity_mean_and_worst_sentence() {
        // Sentence 1 identical, sentence 2 at 90 degrees, sentence 3 scaled (cosine 1).
        let reference = [1.0f32, 0.0, 0.0, 1.0, 3.0, 4.0];
        let variant = [1.0f32, 0.0, 1.0, 0.0, 6.0, 8.0];
        let q = embedding_quality("t", "m-baseline", &variant, &reference, 2, &[], &[]);
        assert_eq!(q.sentences, 3);
        assert!(close(q.mean_cosine, 2.0 / 3.0));
        assert!(close(q.min_cosine, 0.0));
        assert_eq!((q.pairs, q.spearman), (None, None));
        let q = embedding_quality(
            "t",
            "m-baseline",
            &reference,
            &reference,
            2,
            &[0.1, 0.5, 0.9],
            &[0.0, 2.0, 5.0],
        );
        assert!(close(q.mean_cosine, 1.0) && close(q.min_cosine, 1.0));
        assert_eq!(q.pairs, Some(3));
        assert!(close(q.spearman.unwrap(), 1.0));
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Three classes; class 2 is never predicted.
    ///   true:  0 0 0 1 1 2 2
    ///   pred:  0 0 1 1 0 1 0
    /// Confusion (rows true): [[2,1,0],[1,1,0],[1,1,0]].
    /// class 0: TP 2, FP 2, FN 1 -> P 2/4, R 2/3, F1 4/7
    /// class 1: TP 1, FP 2, FN 1 -> P 1/3, R 1/2, F1 2/5
    /// class 2: TP 0, FP 0, FN 2 -> P 0 (0/0, zero_division), R 0, F1 0
    /// scikit-learn: precision_score(average="macro", zero_division=0) = (1/2 + 1/3 + 0)/3.
    #[test]
    fn hand_computed_confusion_with_a_class_never_predicted() {
        let t = [0, 0, 0, 1, 1, 2, 2];
        let p = [0, 0, 1, 1, 0, 1, 0];
        let q = classification("hand", &t, &p, 3);
        assert_eq!(
            q.confusion_matrix,
            vec![vec![2, 1, 0], vec![1, 1, 0], vec![1, 1, 0]]
        );
        assert!(close(q.accuracy, 3.0 / 7.0));
        let c = &q.per_class;
        assert!(close(c[0].precision, 0.5) && close(c[0].recall, 2.0 / 3.0));
        assert!(close(c[0].f1, 4.0 / 7.0));
        assert!(close(c[1].precision, 1.0 / 3.0) && close(c[1].recall, 0.5));
        assert!(close(c[1].f1, 0.4));
        assert_eq!((c[2].precision, c[2].recall, c[2].f1), (0.0, 0.0, 0.0));
        assert_eq!(
            c.iter().map(|c| c.support).collect::<Vec<_>>(),
            vec![3, 2, 2]
        );
        assert!(close(q.precision_macro, (0.5 + 1.0 / 3.0) / 3.0));
        assert!(close(q.recall_macro, (2.0 / 3.0 + 0.5) / 3.0));
        assert!(close(q.f1_macro, (4.0 / 7.0 + 0.4) / 3.0));
        assert!(close(q.precision_weighted, (0.5 * 3.0 + 2.0 / 3.0) / 7.0));
        assert!(
            close(q.recall_weighted, 3.0 / 7.0),
            "weighted recall = accuracy"
        );
        assert!(close(q.f1_weighted, (4.0 / 7.0 * 3.0 + 0.4 * 2.0) / 7.0));
        assert_eq!(q.zero_division, 0.0);
    }

    /// A class that occurs neither in the labels nor in the predictions is left out of the
    /// macro average (scikit-learn's label set), but still listed per class.
    #[test]
    fn absent_classes_do_not_dilute_the_macro_average() {
        let q = classification("x", &[0, 1, 1], &[0, 1, 0], 4);
        assert_eq!(q.per_class.len(), 4);
        assert_eq!(q.per_class[3].support, 0);
        // class 0: P 1/2 R 1 F1 2/3; class 1: P 1 R 1/2 F1 2/3.
        assert!(close(q.precision_macro, 0.75));
        assert!(close(q.f1_macro, 2.0 / 3.0));
        assert_eq!(q.confusion_matrix.len(), 4);
    }

    #[test]
    fn perfect_and_empty_inputs() {
        let q = classification("x", &[0, 1, 2], &[0, 1, 2], 3);
        assert_eq!((q.accuracy, q.f1_macro, q.f1_weighted), (1.0, 1.0, 1.0));
        let e = classification("x", &[], &[], 2);
        assert_eq!((e.accuracy, e.f1_macro, e.samples), (0.0, 0.0, 0));
    }

    #[test]
    fn labels_beyond_classes_enlarge_the_matrix() {
        let q = classification("x", &[0, 3], &[0, 0], 2);
        assert_eq!(q.confusion_matrix.len(), 4);
        assert_eq!(q.confusion_matrix[3][0], 1);
    }

    #[test]
    fn argmax_takes_the_first_of_ties_and_skips_nan() {
        assert_eq!(
            argmax_rows(&[1.0, 3.0, 3.0, 0.0, f32::NAN, 2.0], 3),
            vec![1, 2]
        );
        assert_eq!(argmax_rows(&[f32::NAN, 1.0], 2), vec![1]);
    }

    #[test]
    fn fidelity_by_hand() {
        let reference = [1.0, 0.0, 0.0, 1.0];
        let same = fidelity("b", &reference, &reference, 2);
        assert_eq!((same.top1_agreement, same.max_abs_diff), (1.0, 0.0));
        assert!(close(same.mean_cosine, 1.0));
        // Sample 1 agrees (cos 1/sqrt(2)), sample 2 flips (cos 0).
        let other = [1.0, 1.0, 1.0, 0.0];
        let f = fidelity("b", &other, &reference, 2);
        assert!(close(f.top1_agreement, 0.5));
        assert!(close(f.mean_cosine, (1.0 / 2f64.sqrt()) / 2.0));
        assert!(close(f.max_abs_diff, 1.0));
        let zero = fidelity("b", &[0.0, 0.0], &[0.0, 0.0], 2);
        assert_eq!(zero.mean_cosine, 1.0);
    }
}
