//! Datasets for training and scoring variants: the built-in UCI digits (shipped in the repo,
//! `data/digits/`), and loaders for users' data in IDX (MNIST), CSV and `.npy` files; a
//! seeded stratified train/test split; and the preparation of inputs at a model's input size
//! (bilinear or nearest resize, or zero padding). Plain data: no candle here.

pub mod idx;
pub mod npy;
pub mod text;

use std::io::Read;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The UCI optical digits as carried by scikit-learn (see `data/digits/ATTRIBUTION.md`).
const DIGITS_CSV_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/digits/digits.csv.gz"
));

#[derive(Debug, thiserror::Error)]
#[error("cannot load data from {path}: {reason}")]
pub struct DataError {
    pub path: PathBuf,
    pub reason: String,
}

impl DataError {
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        DataError {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSource {
    /// The built-in UCI digits: 1,797 images, 8x8x1, values 0..16, labels 0..9.
    Digits,
    /// MNIST-style IDX files (optionally `.gz`): images `[n, h, w]` or `[n, h, w, c]`, labels `[n]`.
    Idx { images: PathBuf, labels: PathBuf },
    /// One sample per row: the features, and the label in the first or last column. A first
    /// row that is not all numbers is taken as a header and skipped.
    Csv {
        path: PathBuf,
        label_column: LabelColumn,
    },
    /// Features `[n, ...]` (NHWC for 4-D, `[n, h, w]` for 3-D) and labels `[n]`.
    Npy { features: PathBuf, labels: PathBuf },
    /// Sentences (and optionally labelled pairs) for sentence encoders (`arch = "bert"`).
    Sentences(text::TextSource),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelColumn {
    First,
    Last,
}

/// How samples reach a model whose input size differs from the data's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Sizes must match.
    None,
    /// Bilinear interpolation with half-pixel centres (PyTorch `align_corners=False`,
    /// TensorFlow 2 `tf.image.resize`), no antialiasing.
    Bilinear,
    /// Nearest neighbour, source index `floor(dst * in / out)` (PyTorch `nearest`).
    Nearest,
    /// Zero padding around the image, centred (the model's input must not be smaller).
    Pad,
}

impl Resize {
    pub fn as_str(&self) -> &'static str {
        match self {
            Resize::None => "none",
            Resize::Bilinear => "bilinear",
            Resize::Nearest => "nearest",
            Resize::Pad => "pad",
        }
    }
}

/// The suite's `[data]` table, resolved (paths absolute, defaults applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub source: DataSource,
    /// `[height, width, channels]` of one sample where the files do not say (flat CSV/NPY rows).
    pub shape: Option<[usize; 3]>,
    /// Feature values are divided by this (digits: 16, IDX: 255, CSV/NPY: 1).
    pub scale: f64,
    /// Fraction of each class held out for scoring.
    pub test_fraction: f64,
    /// Seeds the stratified split.
    pub seed: u64,
    pub resize: Resize,
}

impl DataSource {
    pub fn default_scale(&self) -> f64 {
        match self {
            DataSource::Digits => 16.0,
            DataSource::Idx { .. } => 255.0,
            DataSource::Csv { .. } | DataSource::Npy { .. } | DataSource::Sentences(_) => 1.0,
        }
    }
    /// The files this source reads (for error locations).
    pub fn files(&self) -> Vec<&Path> {
        match self {
            DataSource::Digits => Vec::new(),
            DataSource::Idx { images, labels } => vec![images, labels],
            DataSource::Csv { path, .. } => vec![path],
            DataSource::Npy { features, labels } => vec![features, labels],
            DataSource::Sentences(t) => t
                .sentences
                .iter()
                .chain(&t.pairs)
                .map(|p| p.as_path())
                .collect(),
        }
    }

    pub fn is_text(&self) -> bool {
        matches!(self, DataSource::Sentences(_))
    }
}

/// A loaded dataset with its split. Features are kept in HWC order per sample, scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub hwc: [usize; 3],
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
    /// Largest label + 1.
    pub classes: usize,
    /// Sample indices of the training split, ascending.
    pub train: Vec<usize>,
    /// Sample indices of the test split, ascending.
    pub test: Vec<usize>,
    /// SHA-256 over the features, labels, shape and split: keys the artifacts trained on it.
    pub sha256: String,
    pub resize: Resize,
}

/// Reads a file, decompressing it when its name ends in `.gz`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::new(path, e.to_string()))?;
    if path.extension().and_then(|e| e.to_str()) == Some("gz") {
        gunzip(&raw).map_err(|e| DataError::new(path, format!("not valid gzip: {e}")))
    } else {
        Ok(raw)
    }
}

fn gunzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw).read_to_end(&mut out)?;
    Ok(out)
}

/// Rows of numbers: `(features, label)` per row.
fn parse_csv(text: &[u8], label: LabelColumn) -> Result<(Vec<Vec<f64>>, Vec<f64>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", i + 1))?;
        let parsed: Result<Vec<f64>, _> = record.iter().map(|f| f.parse::<f64>()).collect();
        let mut values = match parsed {
            Ok(v) => v,
            Err(_) if i == 0 => continue, // a header row
            Err(_) => {
                return Err(format!(
                    "row {}: not all values are numbers ({})",
                    i + 1,
                    record.iter().take(4).collect::<Vec<_>>().join(",")
                ))
            }
        };
        if values.len() < 2 {
            return Err(format!(
                "row {}: needs at least one feature and a label",
                i + 1
            ));
        }
        let y = match label {
            LabelColumn::First => values.remove(0),
            LabelColumn::Last => values.pop().expect("two or more values"),
        };
        rows.push(values);
        labels.push(y);
    }
    Ok((rows, labels))
}

fn labels_from(values: &[f64]) -> Result<Vec<usize>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            if y >= 0.0 && y.fract() == 0.0 && y < 1e6 {
                Ok(y as usize)
            } else {
                Err(format!(
                    "label {y} of sample {i} is not a class number (0, 1, 2, ...)"
                ))
            }
        })
        .collect()
}

/// `[h, w, c]` of samples given the array's per-sample dimensions and the declared shape.
fn sample_shape(dims: &[usize], declared: Option<[usize; 3]>) -> Result<[usize; 3], String> {
    let count: usize = dims.iter().product();
    if let Some(s) = declared {
        if s.iter().product::<usize>() != count {
            return Err(format!(
                "`shape` {s:?} holds {} values, but each sample has {count}",
                s.iter().product::<usize>()
            ));
        }
        return Ok(s);
    }
    Ok(match dims {
        [d] => [1, *d, 1],
        [h, w] => [*h, *w, 1],
        [h, w, c] => [*h, *w, *c],
        other => return Err(format!("samples of shape {other:?} are not supported")),
    })
}

/// Loads and splits the data the spec names.
pub fn load(spec: &DataSpec) -> Result<Dataset, DataError> {
    let here = spec
        .source
        .files()
        .first()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("(built-in digits)"));
    let fail = |reason: String| DataError::new(&here, reason);
    let (name, hwc, values, labels): (String, [usize; 3], Vec<f64>, Vec<f64>) = match &spec.source {
        DataSource::Sentences(_) => {
            return Err(fail(
                "sentences are text for a bert, not labelled samples (data::text loads them)"
                    .into(),
            ))
        }
        DataSource::Digits => {
            let text = gunzip(DIGITS_CSV_GZ).map_err(|e| fail(e.to_string()))?;
            let (rows, labels) = parse_csv(&text, LabelColumn::Last).map_err(fail)?;
            let hwc = sample_shape(&[8, 8], spec.shape).map_err(fail)?;
            ("digits".into(), hwc, rows.concat(), labels)
        }
        DataSource::Csv { path, label_column } => {
            let text = read_maybe_gz(path)?;
            let (rows, labels) =
                parse_csv(&text, *label_column).map_err(|e| DataError::new(path, e))?;
            let width = rows.first().map(|r| r.len()).unwrap_or(0);
            if let Some(i) = rows.iter().position(|r| r.len() != width) {
                return Err(DataError::new(
                    path,
                    format!(
                        "row {} has {} features, the first has {width}",
                        i + 1,
                        rows[i].len()
                    ),
                ));
            }
            let hwc = sample_shape(&[width], spec.shape).map_err(|e| DataError::new(path, e))?;
            (file_name(path), hwc, rows.concat(), labels)
        }
        DataSource::Idx { images, labels } => {
            let x = idx::read(images)?;
            let y = idx::read(labels)?;
            if y.shape.len() != 1 {
                return Err(DataError::new(
                    labels,
                    format!("labels must be one-dimensional, got shape {:?}", y.shape),
                ));
            }
            let hwc =
                sample_shape(&x.shape[1..], spec.shape).map_err(|e| DataError::new(images, e))?;
            (file_name(images), hwc, x.values, y.values)
        }
        DataSource::Npy { features, labels } => {
            let x = npy::read(features)?;
            let y = npy::read(labels)?;
            let flat_labels = y.shape.len() == 1 || (y.shape.len() == 2 && y.shape[1] == 1);
            if !flat_labels {
                return Err(DataError::new(
                    labels,
                    format!("labels must have shape [n], got {:?}", y.shape),
                ));
            }
            if x.shape.len() < 2 {
                return Err(DataError::new(
                    features,
                    format!("features must have shape [n, ...], got {:?}", x.shape),
                ));
            }
            let hwc =
                sample_shape(&x.shape[1..], spec.shape).map_err(|e| DataError::new(features, e))?;
            (file_name(features), hwc, x.values, y.values)
        }
    };
    let n = labels.len();
    let per: usize = hwc.iter().product();
    if n == 0 {
        return Err(fail("no samples".into()));
    }
    if values.len() != n * per {
        return Err(fail(format!(
            "{n} labels but {} feature values ({} per sample expected)",
            values.len(),
            per
        )));
    }
    let labels = labels_from(&labels).map_err(fail)?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(fail("features contain NaN or infinite values".into()));
    }
    let scale = spec.scale;
    let features: Vec<f32> = values.iter().map(|&v| (v / scale) as f32).collect();
    let classes = labels.iter().max().map(|m| m + 1).unwrap_or(0);
    let (train, test) = stratified_split(&labels, spec.test_fraction, spec.seed);
    if train.is_empty() || test.is_empty() {
        return Err(fail(format!(
            "test_fraction {} leaves an empty {} split of {n} samples",
            spec.test_fraction,
            if train.is_empty() { "training" } else { "test" }
        )));
    }
    let mut h = Sha256::new();
    h.update(b"inferbench-data-v1");
    for v in &features {
        h.update(v.to_le_bytes());
    }
    for &y in &labels {
        h.update((y as u64).to_le_bytes());
    }
    for d in hwc {
        h.update((d as u64).to_le_bytes());
    }
    for &i in &test {
        h.update((i as u64).to_le_bytes());
    }
    Ok(Dataset {
        name,
        hwc,
        features,
        labels,
        classes,
        train,
        test,
        sha256: format!("{:x}", h.finalize()),
        resize: spec.resize,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Per class: shuffle its sample indices with a seeded ChaCha8 stream and hold out
/// `round(count * test_fraction)` of them (at least one when the class has two or more).
/// Returns (train, test), each ascending.
pub fn stratified_split(
    labels: &[usize],
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let classes = labels.iter().max().map(|m| m + 1).unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        idx.shuffle(&mut rng);
        let mut k = (idx.len() as f64 * test_fraction).round() as usize;
        if k == 0 && idx.len() >= 2 && test_fraction > 0.0 {
            k = 1;
        }
        let k = k.min(idx.len());
        test.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

impl Dataset {
    /// The given samples as model inputs at `size` (height, width; `None`: the data's own):
    /// `[n, c, h, w]` values, each sample's planes in C, H, W order, resized as `resize` says.
    pub fn inputs(&self, size: Option<(usize, usize)>, indices: &[usize]) -> Vec<f32> {
        let [h, w, c] = self.hwc;
        let per = h * w * c;
        let (oh, ow) = size.unwrap_or((h, w));
        let mut out = Vec::with_capacity(indices.len() * oh * ow * c);
        let mut chw = vec![0f32; per];
        for &i in indices {
            let sample = &self.features[i * per..(i + 1) * per];
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        chw[ch * h * w + y * w + x] = sample[(y * w + x) * c + ch];
                    }
                }
            }
            for ch in 0..c {
                let plane = &chw[ch * h * w..(ch + 1) * h * w];
                resize_plane(plane, (h, w), (oh, ow), self.resize, &mut out);
            }
        }
        out
    }

    pub fn labels_of(&self, indices: &[usize]) -> Vec<usize> {
        indices.iter().map(|&i| self.labels[i]).collect()
    }

    /// `digits: test split, 360 of 1797 samples, 8x8x1 bilinear to 28x28`, for a model
    /// whose input is `size` (height, width; `None`: the data's own).
    pub fn describe_test(&self, size: Option<(usize, usize)>) -> String {
        let [h, w, c] = self.hwc;
        let mut s = format!(
            "{}: test split, {} of {} samples, {h}x{w}x{c}",
            self.name,
            self.test.len(),
            self.labels.len()
        );
        if let Some((ih, iw)) = size {
            if (ih, iw) != (h, w) {
                s.push_str(&format!(" {} to {ih}x{iw}", self.resize.as_str()));
            }
        }
        s
    }
}

/// Whether images of `(h, w)` can reach a model input of `(ih, iw)` under `resize`.
pub fn check_resize(
    (h, w): (usize, usize),
    (ih, iw): (usize, usize),
    resize: Resize,
) -> Result<(), String> {
    if (ih, iw) == (h, w) {
        return Ok(());
    }
    match resize {
        Resize::None => Err(format!(
            "the data is {h}x{w}, the model's input is {ih}x{iw}, and `resize` is not set"
        )),
        Resize::Pad if ih < h || iw < w => Err(format!(
            "padding cannot shrink {h}x{w} images to the model's {ih}x{iw}"
        )),
        _ => Ok(()),
    }
}

/// Appends one `out_hw` plane made from `plane` (`in_hw`, row-major).
fn resize_plane(
    plane: &[f32],
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    how: Resize,
    out: &mut Vec<f32>,
) {
    if (h, w) == (oh, ow) {
        out.extend_from_slice(plane);
        return;
    }
    match how {
        Resize::Pad => {
            let (top, left) = ((oh - h) / 2, (ow - w) / 2);
            for y in 0..oh {
                for x in 0..ow {
                    let inside = y >= top && y < top + h && x >= left && x < left + w;
                    out.push(if inside {
                        plane[(y - top) * w + (x - left)]
                    } else {
                        0.0
                    });
                }
            }
        }
        Resize::Nearest | Resize::None => {
            for y in 0..oh {
                let sy = (y * h / oh).min(h - 1);
                for x in 0..ow {
                    let sx = (x * w / ow).min(w - 1);
                    out.push(plane[sy * w + sx]);
                }
            }
        }
        Resize::Bilinear => {
            let src = |dst: usize, n_in: usize, n_out: usize| {
                let s = ((dst as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, (s - i0 as f64) as f32)
            };
            for y in 0..oh {
                let (y0, y1, fy) = src(y, h, oh);
                for x in 0..ow {
                    let (x0, x1, fx) = src(x, w, ow);
                    let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                    let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                    out.push(top * (1.0 - fy) + bottom * fy);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
