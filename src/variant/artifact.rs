//! The artifact cache: every built variant is saved under
//! `<cache>/artifacts/<key>/` (`weights.safetensors` or `weights.gguf`, and `manifest.json`),
//! where `key` is the SHA-256 of a canonical JSON of everything the build depends on: the
//! recipe, its parents' keys, the data and the seeds. A run finds an artifact by its key, so
//! the same recipe is built once; change anything it depends on and the key changes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::HashMap;

use crate::model::{Architecture, Stored, Weights};
use crate::schema::{FloatLayer, LayerSparsity, TrainingLog};

/// Bumped when the way artifacts are built or stored changes, so old ones are not reused.
pub const ARTIFACT_FORMAT: u32 = 2;

/// The cache key of a build described by `inputs` (a JSON value; object keys are sorted).
pub fn key(inputs: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(format!("inferbench-artifact-v{ARTIFACT_FORMAT}\n"));
    h.update(serde_json::to_string(inputs).expect("JSON values serialize"));
    format!("{:x}", h.finalize())
}

/// SHA-256 of a file's bytes.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// Bytes of a file after gzip (default level 6).
pub fn gzip_bytes(path: &Path) -> std::io::Result<u64> {
    struct Count(u64);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut enc = flate2::write::GzEncoder::new(Count(0), flate2::Compression::default());
    std::io::copy(&mut std::fs::File::open(path)?, &mut enc)?;
    Ok(enc.finish()?.0)
}

/// `manifest.json` beside an artifact's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    /// What the key hashes.
    pub inputs: serde_json::Value,
    /// The variant it was built for (`<model>-<variant>`); another variant with the same
    /// recipe reuses it.
    pub built_for: String,
    pub recipe: String,
    pub arch: Architecture,
    /// `weights.safetensors` or `weights.gguf`.
    pub file: String,
    pub float_layers: Option<Vec<FloatLayer>>,
    pub sparsity: Option<Vec<LayerSparsity>>,
    pub training: Option<TrainingLog>,
    pub build_s: f64,
    pub gzip_bytes: u64,
    pub inferbench_version: String,
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Self {
        Cache {
            root: dir.join("artifacts"),
        }
    }

    pub fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The manifest and weights path of a complete artifact, if there is one. A damaged
    /// entry (unreadable manifest, missing weights) counts as absent.
    pub fn lookup(&self, key: &str) -> Option<(Manifest, PathBuf)> {
        let dir = self.dir(key);
        let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
        let m: Manifest = serde_json::from_str(&text).ok()?;
        let weights = dir.join(&m.file);
        (m.key == key && weights.is_file()).then_some((m, weights))
    }

    /// Saves an artifact: `write` puts the weights at the path it is given; the manifest is
    /// completed (gzip size) and written; then the folder is moved into place at once, so a
    /// reader never sees half an artifact. Returns the final weights path and manifest.
    pub fn store(
        &self,
        mut manifest: Manifest,
        write: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<(Manifest, PathBuf), String> {
        let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
        std::fs::create_dir_all(&self.root).map_err(|e| io("cannot create", &self.root, e))?;
        let tmp = self
            .root
            .join(format!(".tmp-{}-{}", manifest.key, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
        let result = (|| {
            let weights = tmp.join(&manifest.file);
            write(&weights)?;
            manifest.gzip_bytes =
                gzip_bytes(&weights).map_err(|e| io("cannot read", &weights, e))?;
            let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
            let mpath = tmp.join("manifest.json");
            std::fs::write(&mpath, text).map_err(|e| io("cannot write", &mpath, e))?;
            let dir = self.dir(&manifest.key);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| io("cannot replace", &dir, e))?;
            }
            std::fs::rename(&tmp, &dir).map_err(|e| io("cannot move into", &dir, e))?;
            Ok(dir.join(&manifest.file))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result.map(|p| (manifest, p))
    }
}

/// Writes weights as safetensors (float) or GGUF.
pub(super) fn save(
    arch: &Architecture,
    weights: &Weights,
    format: &str,
    key: &str,
    recipe: &str,
    path: &Path,
) -> Result<(), String> {
    if format == "gguf" {
        let meta = [
            ("general.architecture", "inferbench".to_string()),
            (
                "inferbench.arch",
                serde_json::to_string(arch).expect("plain data"),
            ),
            ("inferbench.recipe", recipe.to_string()),
            ("inferbench.key", key.to_string()),
        ];
        return crate::model::save_gguf(weights, &meta, path).map_err(|e| e.to_string());
    }
    let mut tensors = HashMap::new();
    for (name, t) in weights {
        match t {
            Stored::Float(t) => {
                tensors.insert(name.clone(), t.clone());
            }
            Stored::Quantized(_) => {
                return Err(format!(
                    "{name} is quantized; quantized weights are saved as GGUF"
                ))
            }
        }
    }
    crate::model::save_safetensors(&tensors, path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_object_order_and_change_with_any_input() {
        let a = serde_json::json!({"recipe": "quantize", "dtype": "q8_0", "parent": "x"});
        let b = serde_json::json!({"parent": "x", "dtype": "q8_0", "recipe": "quantize"});
        assert_eq!(key(&a), key(&b));
        let c = serde_json::json!({"parent": "x", "dtype": "q4_0", "recipe": "quantize"});
        assert_ne!(key(&a), key(&c));
        assert_eq!(key(&a).len(), 64);
    }
}
